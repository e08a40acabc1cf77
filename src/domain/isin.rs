//! ISIN (ISO 6166): the 12-character securities identifier, parsed strictly.
//!
//! Strict means: exactly 12 ASCII characters, `[A-Z]{2}[A-Z0-9]{9}[0-9]`, a correct check digit,
//! and a prefix that is an ISO 3166-1 alpha-2 country code or one of the special prefixes in use
//! (`XS`, `EU`, `EZ`, `XA`–`XD`, `XF`, `QS`, `QT`, `QW`, and the withdrawn `AN`, `CS`, `XK`). No
//! upper-casing, trimming or repair: an ISIN that needs any of those is reported, never guessed.
//! The format and check digit come from the `isin` crate; the prefix policy is ours.

use std::fmt;
use std::sync::OnceLock;

/// A valid ISIN.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Isin([u8; 12]);

/// Why a string is not a valid ISIN. The message says what a person should look at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsinError {
    #[error("length: {0} characters, an ISIN has 12")]
    Length(usize),
    #[error("character: {found:?} at position {position} is not an ASCII {expected}")]
    Character { position: usize, found: char, expected: &'static str },
    #[error("prefix: {0:?} is not an ISO 3166-1 country code or a known ISIN prefix")]
    UnknownPrefix(String),
    #[error("check digit: {found}, expected {expected}")]
    CheckDigit { found: char, expected: char },
}

/// Prefixes that are not ISO 3166-1 alpha-2 codes but appear on real ISINs.
const SPECIAL_PREFIXES: &[&str] = &[
    "XS", "EU", "EZ", "XA", "XB", "XC", "XD", "XF", "QS", "QT", "QW",
    // Withdrawn or user-assigned country codes still found on old ISINs.
    "AN", "CS", "XK",
];

/// Which two-letter prefixes are allowed, indexed by `(a - 'A') * 26 + (b - 'A')`.
fn allowed_prefixes() -> &'static [bool; 676] {
    static TABLE: OnceLock<[bool; 676]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = [false; 676];
        let countries = celes::Country::get_countries();
        let codes = countries.iter().map(|country| country.alpha2).chain(SPECIAL_PREFIXES.iter().copied());
        for code in codes {
            if let [a @ b'A'..=b'Z', b @ b'A'..=b'Z'] = code.as_bytes() {
                table[usize::from(a - b'A') * 26 + usize::from(b - b'A')] = true;
            }
        }
        table
    })
}

/// Whether `prefix` (two upper-case ASCII letters) may start an ISIN.
pub fn is_known_prefix(prefix: [u8; 2]) -> bool {
    match prefix {
        [a @ b'A'..=b'Z', b @ b'A'..=b'Z'] => {
            allowed_prefixes()[usize::from(a - b'A') * 26 + usize::from(b - b'A')]
        }
        _ => false,
    }
}

impl Isin {
    /// Completes 11 characters (prefix and NSIN) with their check digit.
    pub fn with_check_digit(payload: &str) -> Result<Self, IsinError> {
        let mut candidate = format!("{payload}0");
        match Self::parse(&candidate) {
            Err(IsinError::CheckDigit { expected, .. }) => {
                candidate.pop();
                candidate.push(expected);
                Self::parse(&candidate)
            }
            other => other,
        }
    }

    /// Parses `raw` exactly as given.
    pub fn parse(raw: &str) -> Result<Self, IsinError> {
        let bytes = raw.as_bytes();
        if let Some((position, found)) = raw.char_indices().find(|(_, c)| !c.is_ascii()) {
            let position = raw[..position].chars().count() + 1;
            return Err(IsinError::Character { position, found, expected: expected_at(position) });
        }
        if bytes.len() != 12 {
            return Err(IsinError::Length(bytes.len()));
        }
        match isin::validate(raw) {
            Ok(_) => {}
            Err(isin::Error::IncorrectCheckDigit { was, expected }) => {
                return Err(IsinError::CheckDigit { found: char::from(was), expected: char::from(expected) });
            }
            // Any other failure is a character out of place; say which one.
            Err(_) => return Err(first_bad_character(bytes)),
        }
        if !is_known_prefix([bytes[0], bytes[1]]) {
            return Err(IsinError::UnknownPrefix(raw[..2].to_owned()));
        }
        let mut code = [0u8; 12];
        code.copy_from_slice(bytes);
        Ok(Self(code))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The two-letter prefix (usually the country of the numbering agency).
    pub fn prefix(&self) -> &str {
        &self.as_str()[..2]
    }

    /// The nine-character national securities identifying number.
    pub fn nsin(&self) -> &str {
        &self.as_str()[2..11]
    }

    /// The check digit.
    pub fn check_digit(&self) -> char {
        char::from(self.0[11])
    }
}

/// What belongs at a 1-based position of an ISIN.
fn expected_at(position: usize) -> &'static str {
    match position {
        1 | 2 => "letter A-Z",
        12 => "digit 0-9",
        _ => "letter A-Z or digit 0-9",
    }
}

fn first_bad_character(bytes: &[u8]) -> IsinError {
    let bad = bytes.iter().enumerate().find(|(index, byte)| match index {
        0 | 1 => !byte.is_ascii_uppercase(),
        11 => !byte.is_ascii_digit(),
        _ => !(byte.is_ascii_uppercase() || byte.is_ascii_digit()),
    });
    match bad {
        Some((index, byte)) => IsinError::Character {
            position: index + 1,
            found: char::from(*byte),
            expected: expected_at(index + 1),
        },
        // The isin crate refused something this check accepts; report the whole value's shape.
        None => IsinError::Length(bytes.len()),
    }
}

impl fmt::Display for Isin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Isin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Isin({})", self.as_str())
    }
}

impl std::str::FromStr for Isin {
    type Err = IsinError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The check digit by the definition in ISO 6166, written out plainly: expand letters to two
    /// digits, double every second digit from the right, add the digits.
    fn reference_check_digit(payload: &str) -> char {
        let digits: Vec<u32> = payload
            .chars()
            .flat_map(|c| {
                let value = c.to_digit(36).unwrap_or(0);
                if value >= 10 { vec![value / 10, value % 10] } else { vec![value] }
            })
            .collect();
        let sum: u32 = digits
            .iter()
            .rev()
            .enumerate()
            .map(|(i, d)| if i % 2 == 0 { (d * 2) / 10 + (d * 2) % 10 } else { *d })
            .sum();
        char::from_digit((10 - sum % 10) % 10, 10).unwrap_or('?')
    }

    #[test]
    fn real_isins_are_valid() {
        for code in [
            "US0378331005",
            "US09739D1000",
            "AU0000XVGZA3",
            "GB00B03MLX29",
            "DE000BAY0017",
            "ES0SI0000005",
            "EU000A1G0AE8",
            "EZR9HY1361L7",
            "AN8068571086",
            "XS2021832634",
        ] {
            let isin = Isin::parse(code).unwrap_or_else(|e| panic!("{code}: {e}"));
            assert_eq!(isin.as_str(), code);
        }
        let apple = Isin::parse("US0378331005").unwrap();
        assert_eq!((apple.prefix(), apple.nsin(), apple.check_digit()), ("US", "037833100", '5'));
    }

    #[test]
    fn each_rejection_says_why() {
        use IsinError::*;
        let cases: [(&str, IsinError); 9] = [
            ("US037833100", Length(11)),
            ("DE000A0VWUW00", Length(13)),
            ("US0378331004", CheckDigit { found: '4', expected: '5' }),
            ("FR388237343X", Character { position: 12, found: 'X', expected: "digit 0-9" }),
            ("US75031-D995", Character { position: 8, found: '-', expected: "letter A-Z or digit 0-9" }),
            ("GB00bWS0SJ01", Character { position: 5, found: 'b', expected: "letter A-Z or digit 0-9" }),
            ("D3000VXGJBV4", Character { position: 2, found: '3', expected: "letter A-Z" }),
            ("D\u{415}0009073411", Character { position: 2, found: '\u{415}', expected: "letter A-Z" }),
            ("ZZ25473R5013", UnknownPrefix("ZZ".to_owned())),
        ];
        for (raw, expected) in cases {
            assert_eq!(Isin::parse(raw), Err(expected), "{raw:?}");
        }
    }

    #[test]
    fn nothing_is_trimmed_or_upper_cased() {
        assert!(Isin::parse(" US0378331005").is_err());
        assert!(Isin::parse("US0378331005 ").is_err());
        assert!(Isin::parse("us0378331005").is_err());
        assert!(Isin::parse("\u{feff}US0378331005").is_err());
    }

    #[test]
    fn the_check_digit_walks_from_the_right() {
        // An odd number of letters makes the expanded string even: left-first doubling fails.
        assert_eq!(reference_check_digit("US09739D100"), '0');
        assert_eq!(reference_check_digit("AU0000XVGZA"), '3');
        assert_eq!(reference_check_digit("US037833100"), '5');
    }

    fn payload() -> impl Strategy<Value = String> {
        const PREFIXES: [&str; 10] = ["US", "DE", "GB", "CH", "FR", "XS", "EU", "EZ", "JP", "CA"];
        (proptest::sample::select(&PREFIXES[..]), "[A-Z0-9]{9}").prop_map(|(p, nsin)| format!("{p}{nsin}"))
    }

    proptest! {
        #[test]
        fn a_payload_with_its_check_digit_is_valid(payload in payload()) {
            let code = format!("{payload}{}", reference_check_digit(&payload));
            prop_assert!(Isin::parse(&code).is_ok(), "{}", code);
        }

        #[test]
        fn any_other_check_digit_is_refused_with_the_right_one(payload in payload(), wrong in 0u32..10) {
            let right = reference_check_digit(&payload);
            let wrong = char::from_digit(wrong, 10).unwrap_or('0');
            prop_assume!(wrong != right);
            let code = format!("{payload}{wrong}");
            prop_assert_eq!(Isin::parse(&code), Err(IsinError::CheckDigit { found: wrong, expected: right }));
        }

        #[test]
        fn parsing_never_panics_and_accepts_only_the_strict_shape(raw in "\\PC{0,14}") {
            if let Ok(isin) = Isin::parse(&raw) {
                prop_assert_eq!(isin.as_str(), raw.as_str());
                prop_assert!(raw.len() == 12);
                prop_assert!(raw[..2].bytes().all(|b| b.is_ascii_uppercase()));
                prop_assert!(raw[11..].bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }
}
