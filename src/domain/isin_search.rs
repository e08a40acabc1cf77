//! What the ISIN search box was given: the start of an ISIN, an LEI, or words of a name. One
//! box for all three, as in Django admin; the kind is read from the text itself.

use crate::domain::isin::is_known_prefix;
use crate::domain::{Isin, Lei};

/// At most this many words of a name are searched for (each is one more index look-up).
const MAX_WORDS: usize = 8;

/// A parsed search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsinSearch {
    /// ISINs starting with these characters (upper-cased; 2 to 12 of them). A full valid ISIN
    /// is a prefix of itself.
    Prefix(String),
    /// Records with this issuer LEI.
    Lei(Lei),
    /// Names containing every one of these words, each as a word or the start of one (see
    /// [`index_words`]; a one-character word must be a whole word).
    Words(Vec<String>),
}

impl IsinSearch {
    /// Reads what a person typed. `None` for an empty search (or one without letters or digits).
    ///
    /// A text without spaces is the start of an ISIN when it begins with an ISIN prefix (a
    /// country code or XS, EU, …) and is either just the prefix or has a digit after it: `US`,
    /// `US0378`, `de000bay`; `DEUTSCHE` and `IBM` are names. Twenty characters that are a valid
    /// LEI are an LEI.
    pub fn parse(raw: &str) -> Option<IsinSearch> {
        let text = raw.trim();
        let upper = text.to_ascii_uppercase();
        if let Ok(isin) = Isin::parse(&upper) {
            return Some(IsinSearch::Prefix(isin.as_str().to_owned()));
        }
        if let Ok(lei) = Lei::parse(&upper) {
            return Some(IsinSearch::Lei(lei));
        }
        if looks_like_isin_start(upper.as_bytes()) {
            return Some(IsinSearch::Prefix(upper));
        }
        let words = name_words(text);
        (!words.is_empty()).then_some(IsinSearch::Words(words))
    }

    /// The kind, for people ("Searching … by").
    pub fn describe(&self) -> String {
        match self {
            IsinSearch::Prefix(prefix) if prefix.len() == 12 => format!("the ISIN {prefix}"),
            IsinSearch::Prefix(prefix) => format!("ISINs starting with {prefix}"),
            IsinSearch::Lei(lei) => format!("the issuer LEI {}", lei.as_str()),
            IsinSearch::Words(words) => format!("names with the words {}", words.join(" ")),
        }
    }
}

fn looks_like_isin_start(text: &[u8]) -> bool {
    match text {
        [a, b, rest @ ..] if rest.len() <= 10 && is_known_prefix([*a, *b]) => {
            rest.iter().all(u8::is_ascii_alphanumeric)
                && (rest.is_empty() || rest.iter().any(u8::is_ascii_digit))
        }
        _ => false,
    }
}

/// The words of a name as the name index holds them: transliterated to ASCII (é is e, ß is ss),
/// runs of letters and digits, lower-cased. The index and the search box both read names this
/// way, so what a search finds does not depend on the database's own tokenizer.
pub fn index_words(text: &str) -> Vec<String> {
    deunicode::deunicode(text)
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The words of a name search ([`index_words`], each once, at most [`MAX_WORDS`]).
pub fn name_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in index_words(text) {
        if !words.contains(&word) && words.len() < MAX_WORDS {
            words.push(word);
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(text: &str) -> Option<IsinSearch> {
        Some(IsinSearch::Prefix(text.to_owned()))
    }

    #[test]
    fn the_start_of_an_isin_is_a_prefix_search() {
        assert_eq!(IsinSearch::parse("US0378"), prefix("US0378"));
        assert_eq!(IsinSearch::parse(" de000bay "), prefix("DE000BAY"));
        assert_eq!(IsinSearch::parse("XS"), prefix("XS"));
        assert_eq!(IsinSearch::parse("US0378331005"), prefix("US0378331005"));
    }

    #[test]
    fn words_without_digits_are_a_name_even_when_they_start_like_a_country() {
        let words = |list: &[&str]| Some(IsinSearch::Words(list.iter().map(|w| (*w).to_owned()).collect()));
        assert_eq!(IsinSearch::parse("Deutsche Bank"), words(&["deutsche", "bank"]));
        assert_eq!(IsinSearch::parse("IBM"), words(&["ibm"]));
        assert_eq!(IsinSearch::parse("Société Générale 2030"), words(&["societe", "generale", "2030"]));
        // An ISIN with a wrong check digit is not an ISIN: its 12 characters are searched as a
        // prefix, which finds nothing rather than something else.
        assert_eq!(IsinSearch::parse("US0378331006"), prefix("US0378331006"));
    }

    #[test]
    fn an_lei_is_an_lei_search() {
        let lei = "5493001KJTIIGC8Y1R12";
        assert!(matches!(IsinSearch::parse(lei), Some(IsinSearch::Lei(found)) if found.as_str() == lei));
    }

    #[test]
    fn nothing_searchable_is_no_search() {
        assert_eq!(IsinSearch::parse("   "), None);
        assert_eq!(IsinSearch::parse("%%% --"), None);
    }

    #[test]
    fn names_are_read_as_ascii_words() {
        let words = index_words("Nestlé S.A. — Bär & Co. 2.5% 2031");
        assert_eq!(words, ["nestle", "s", "a", "bar", "co", "2", "5", "2031"]);
    }
}
