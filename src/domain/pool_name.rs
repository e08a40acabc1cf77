//! Pool names: a concurrency pool (Airflow's pools) is a named number of slots shared by the
//! schedules that name it. A name is 1–40 characters of lower-case letters, digits, `-` and
//! `_`, starting with a letter or digit — what a queue name may be, so both read alike in
//! forms, files and on the command line.

use std::fmt;

/// A valid pool name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolName(String);

/// Why a pool name or size was refused; the message is shown beside the form field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("Enter a pool name.")]
    Empty,
    #[error("Use at most {max} characters.", max = PoolName::MAX_LEN)]
    TooLong,
    #[error("Use only lower-case letters, digits, - and _ (found {0:?}).")]
    BadCharacter(char),
    #[error("Start with a letter or a digit.")]
    BadStart,
    #[error("Give a pool at least 1 slot and at most {max}.", max = PoolName::MAX_SLOTS)]
    BadSlots,
}

impl PoolName {
    /// The longest name accepted.
    pub const MAX_LEN: usize = 40;
    /// The most slots a pool may have.
    pub const MAX_SLOTS: i32 = 10_000;

    /// Parses what a person typed. Surrounding spaces are ignored; case is not folded.
    pub fn parse(raw: &str) -> Result<Self, PoolError> {
        let trimmed = raw.trim();
        let first = trimmed.chars().next().ok_or(PoolError::Empty)?;
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(PoolError::TooLong);
        }
        if let Some(bad) = trimmed
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_')))
        {
            return Err(PoolError::BadCharacter(bad));
        }
        if !first.is_ascii_alphanumeric() {
            return Err(PoolError::BadStart);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// A pool's number of slots, checked.
    pub fn slots(count: i64) -> Result<i32, PoolError> {
        i32::try_from(count).ok().filter(|n| (1..=Self::MAX_SLOTS).contains(n)).ok_or(PoolError::BadSlots)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PoolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names_are_short_lower_case_words() {
        assert_eq!(PoolName::parse(" imports ").map(|n| n.to_string()), Ok("imports".to_owned()));
        assert_eq!(PoolName::parse(""), Err(PoolError::Empty));
        assert_eq!(PoolName::parse("Imports"), Err(PoolError::BadCharacter('I')));
        assert_eq!(PoolName::parse("-x"), Err(PoolError::BadStart));
        assert_eq!(PoolName::parse(&"a".repeat(41)), Err(PoolError::TooLong));
    }

    #[test]
    fn a_pool_has_at_least_one_slot() {
        assert_eq!(PoolName::slots(0), Err(PoolError::BadSlots));
        assert_eq!(PoolName::slots(3), Ok(3));
        assert_eq!(PoolName::slots(i64::MAX), Err(PoolError::BadSlots));
    }
}
