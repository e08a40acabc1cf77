//! The names of ISIN prefixes: ISO 3166-1 country names (from the `celes` crate, which the
//! ISIN parser already uses for the list of codes) and what the special prefixes stand for.

/// The name of an ISIN prefix ("DE" → "Germany", "XS" → "international securities …"), or
/// `None` for a prefix that is neither a country code nor a special prefix.
pub fn prefix_name(prefix: &str) -> Option<String> {
    let special = match prefix {
        "XS" => Some("international securities (Euroclear / Clearstream)"),
        "EU" => Some("European Union instruments"),
        "XA" | "XB" | "XC" | "XD" | "XF" | "QS" | "QT" | "QW" | "EZ" => Some("special-purpose prefix"),
        "AN" => Some("Netherlands Antilles (withdrawn code)"),
        "CS" => Some("Serbia and Montenegro (withdrawn code)"),
        "XK" => Some("Kosovo (user-assigned code)"),
        _ => None,
    };
    special.map(str::to_owned).or_else(|| {
        // Only two upper-case letters are codes: celes also reads names and alpha-3 codes.
        (prefix.len() == 2 && prefix.bytes().all(|b| b.is_ascii_uppercase()))
            .then(|| celes::Country::from_alpha2(prefix).ok())
            .flatten()
            .map(|c| c.long_name.to_owned())
    })
}

/// "DE: Germany"; the prefix alone when it has no name.
pub fn prefix_with_name(prefix: &str) -> String {
    match prefix_name(prefix) {
        Some(name) => format!("{prefix}: {name}"),
        None => prefix.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_have_their_country_or_special_name() {
        assert_eq!(prefix_name("DE").as_deref(), Some("Germany"));
        assert_eq!(prefix_with_name("ES"), "ES: Spain");
        assert_eq!(prefix_with_name("XS"), "XS: international securities (Euroclear / Clearstream)");
        assert_eq!(prefix_name("ZZ"), None);
        assert_eq!(prefix_name("de"), None);
        assert_eq!(prefix_name("DEU"), None);
        assert_eq!(prefix_with_name("ZZ"), "ZZ");
    }
}
