//! The ISIN parser never panics, accepts only what it can give back unchanged, and agrees with
//! computing the check digit.
#![no_main]

use isinbeat::domain::Isin;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(isin) = Isin::parse(text) {
        assert_eq!(isin.as_str(), text, "nothing is repaired or normalised");
        let rebuilt = Isin::with_check_digit(&text[..11]).expect("a valid ISIN's payload is valid");
        assert_eq!(rebuilt.as_str(), text);
    }
});
