//! The password policy: what a new password must be before it is hashed and stored.
//!
//! Follows NIST SP 800-63B and Django's validators: a minimum length, no all-digit passwords, no
//! password from the list of the most common ones, and not the username itself. There is no
//! composition rule (no "one symbol and one capital").
//!
//! The common passwords are Django's list (`common-passwords.txt.gz` beside this file, 19,640
//! entries, compiled by Royce Williams; BSD 3-Clause, © Django Software Foundation and individual
//! contributors — see `common-passwords.LICENSE`), compared case-insensitively as Django does.

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::sync::LazyLock;

/// A password that satisfies the policy. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

/// Why a new password was refused; the message is shown beside the form field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("Use at least {min} characters.", min = NewPassword::MIN_LEN)]
    TooShort,
    #[error("Use at most {max} characters.", max = NewPassword::MAX_LEN)]
    TooLong,
    #[error("This password is entirely numeric.")]
    EntirelyNumeric,
    #[error("This password is too common.")]
    TooCommon,
    #[error("The password is too similar to the username.")]
    SameAsUsername,
}

/// Django's common-password list, gzipped, one lowercase password a line. Origin and licence:
/// `common-passwords.LICENSE` in this folder.
const DJANGO_COMMON_PASSWORDS: &[u8] = include_bytes!("common-passwords.txt.gz");

/// Passwords common here that the list lacks: this product's name and a famous example.
const EXTRA_COMMON: &[&str] = &["isinbeat", "correcthorsebatterystaple", "qwertyuiopas"];

/// The common passwords, lowercase, decompressed on first use.
static COMMON: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let mut text = String::new();
    // The data is compiled in, so this cannot fail at run time unless the file was replaced by
    // something that is not gzipped UTF-8 — which the tests below would catch.
    if flate2::read::GzDecoder::new(DJANGO_COMMON_PASSWORDS).read_to_string(&mut text).is_err() {
        text.clear();
    }
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .chain(EXTRA_COMMON.iter().copied())
        .map(str::to_owned)
        .collect()
});

/// Whether `lowered` (a lowercase password) is a common password. Like Django, surrounding
/// spaces do not count. A few digits and symbols added to a common word do not make it safe
/// either, so the password's letters alone are looked up too when they are most of it.
fn is_common(lowered: &str) -> bool {
    let letters: String = lowered.chars().filter(|c| c.is_alphabetic()).collect();
    COMMON.contains(lowered.trim())
        || (letters.chars().count() * 2 >= lowered.chars().count() && COMMON.contains(&letters))
}

impl NewPassword {
    /// The shortest password accepted.
    pub const MIN_LEN: usize = 12;
    /// The longest password accepted: hashing cost grows with length.
    pub const MAX_LEN: usize = 1024;

    /// Checks `raw` against the policy for the account named `username`.
    pub fn parse(raw: &str, username: &str) -> Result<Self, PasswordError> {
        let length = raw.chars().count();
        if length < Self::MIN_LEN {
            return Err(PasswordError::TooShort);
        }
        if length > Self::MAX_LEN {
            return Err(PasswordError::TooLong);
        }
        if raw.chars().all(|c| c.is_ascii_digit()) {
            return Err(PasswordError::EntirelyNumeric);
        }
        let lowered = raw.to_lowercase();
        if is_common(&lowered) {
            return Err(PasswordError::TooCommon);
        }
        let username = username.to_lowercase();
        if !username.is_empty() && (lowered.contains(&username) && username.len() * 2 >= lowered.len()) {
            return Err(PasswordError::SameAsUsername);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(********)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_uncommon_password_is_accepted() {
        assert!(NewPassword::parse("blue kettle on the stove", "alice").is_ok());
    }

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        assert_eq!(NewPassword::parse("short1", "alice"), Err(PasswordError::TooShort));
        assert_eq!(NewPassword::parse("123456789012345", "alice"), Err(PasswordError::EntirelyNumeric));
        assert_eq!(NewPassword::parse("Password2024!", "alice"), Err(PasswordError::TooCommon));
        assert_eq!(
            NewPassword::parse("alice.operator1", "alice.operator"),
            Err(PasswordError::SameAsUsername)
        );
        assert_eq!(NewPassword::parse(&"x".repeat(1025), "alice"), Err(PasswordError::TooLong));
    }

    #[test]
    fn the_whole_django_list_is_loaded() {
        assert_eq!(COMMON.len(), 19_640 + EXTRA_COMMON.len());
        // The first line, one past the 10,000th, and the last.
        for common in ["123456", "supernatural", "fallen_angel"] {
            assert!(COMMON.contains(common), "{common}");
        }
    }

    #[test]
    fn passwords_deep_in_the_list_are_refused_whatever_their_case() {
        for password in ["kartoffelpuffer", "CookieMonster", "  InGodWeTrust  ", "FRIEND OF EMILY"] {
            assert_eq!(NewPassword::parse(password, "alice"), Err(PasswordError::TooCommon), "{password}");
        }
    }

    #[test]
    fn mostly_digits_around_a_short_common_word_are_judged_whole() {
        // "abc" and "x" are on the list, but here they are not most of the password.
        assert!(NewPassword::parse("8472619305abc", "alice").is_ok());
        assert!(NewPassword::parse("9183-4472-1106-x", "alice").is_ok());
        assert_eq!(NewPassword::parse("Sunshine!2024", "alice"), Err(PasswordError::TooCommon));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let password = NewPassword::parse("blue kettle on the stove", "alice");
        assert!(!format!("{password:?}").contains("kettle"));
    }
}
