//! Usernames: 1–150 characters of letters, digits and `@ . + - _`, compared case-insensitively
//! (stored lower-case, so `Admin` and `admin` are one account).

use std::fmt;

/// A valid, lower-cased username.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

/// Why a username was refused; the message is shown beside the form field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("Enter a username.")]
    Empty,
    #[error("Use at most {max} characters.", max = Username::MAX_LEN)]
    TooLong,
    #[error("Use only letters, digits and @ . + - _ (found {0:?}).")]
    BadCharacter(char),
}

impl Username {
    /// The longest username accepted.
    pub const MAX_LEN: usize = 150;

    /// Parses what a person typed. Surrounding spaces are ignored; case is folded.
    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(UsernameError::Empty);
        }
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(UsernameError::TooLong);
        }
        if let Some(bad) =
            trimmed.chars().find(|c| !(c.is_alphanumeric() || matches!(c, '@' | '.' | '+' | '-' | '_')))
        {
            return Err(UsernameError::BadCharacter(bad));
        }
        Ok(Self(trimmed.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_trimmed_and_lower_cased() {
        assert_eq!(Username::parse("  Alice.Ops ").map(|u| u.0), Ok("alice.ops".to_owned()));
    }

    #[test]
    fn bad_usernames_say_why() {
        assert_eq!(Username::parse("   "), Err(UsernameError::Empty));
        assert_eq!(Username::parse("a b"), Err(UsernameError::BadCharacter(' ')));
        assert_eq!(Username::parse("<script>"), Err(UsernameError::BadCharacter('<')));
        assert_eq!(Username::parse(&"x".repeat(151)), Err(UsernameError::TooLong));
        assert!(Username::parse(&"x".repeat(150)).is_ok());
    }
}
