//! The password policy: what a new password must be before it is hashed and stored.
//!
//! Follows NIST SP 800-63B and Django's validators: a minimum length, no all-digit passwords, no
//! password from the list of the most common ones, and not the username itself. There is no
//! composition rule (no "one symbol and one capital").

use std::fmt;

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

/// Passwords that appear at the top of every breach list; a few letters or digits added to one
/// of them do not make it safe, so the check is on the password with digits and symbols removed
/// as well as on the password itself.
const COMMON: &[&str] = &[
    "password",
    "passw0rd",
    "123456789012",
    "qwertyuiop",
    "qwertyuiopas",
    "iloveyou",
    "letmein",
    "welcome",
    "administrator",
    "admin",
    "changeme",
    "trustno1",
    "football",
    "baseball",
    "sunshine",
    "princess",
    "dragon",
    "monkey",
    "starwars",
    "superman",
    "master",
    "shadow",
    "whatever",
    "password1",
    "qwerty",
    "abc123",
    "isinbeat",
    "secret",
    "asdfghjkl",
    "zxcvbnm",
    "correcthorsebatterystaple",
];

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
        let letters: String = lowered.chars().filter(|c| c.is_alphabetic()).collect();
        if COMMON.iter().any(|common| *common == lowered || *common == letters) {
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
    fn debug_output_hides_the_password() {
        let password = NewPassword::parse("blue kettle on the stove", "alice");
        assert!(!format!("{password:?}").contains("kettle"));
    }
}
