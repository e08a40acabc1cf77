//! Queue names, Celery's task routing: a schedule's runs go to its queue, and a worker takes
//! runs only from the queues it was started with (`isinbeat worker --queues default,reports`).
//! A name is 1–40 characters of lower-case letters, digits, `-` and `_`, starting with a letter
//! or digit; it becomes part of a broker's queue name, so it is kept to what every broker takes.

use std::fmt;

/// A valid queue name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(String);

/// Why a queue name was refused; the message is shown beside the form field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueNameError {
    #[error("Enter a queue name (the usual one is “default”).")]
    Empty,
    #[error("Use at most {max} characters.", max = QueueName::MAX_LEN)]
    TooLong,
    #[error("Use only lower-case letters, digits, - and _ (found {0:?}).")]
    BadCharacter(char),
    #[error("Start with a letter or a digit.")]
    BadStart,
}

impl QueueName {
    /// The queue of schedules and workers that name none.
    pub const DEFAULT: &'static str = "default";
    /// The longest name accepted.
    pub const MAX_LEN: usize = 40;

    /// Parses what a person typed. Surrounding spaces are ignored; case is not folded, so that
    /// `Reports` is refused rather than silently becoming another queue than the one meant.
    pub fn parse(raw: &str) -> Result<Self, QueueNameError> {
        let trimmed = raw.trim();
        let first = trimmed.chars().next().ok_or(QueueNameError::Empty)?;
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(QueueNameError::TooLong);
        }
        if let Some(bad) = trimmed
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_')))
        {
            return Err(QueueNameError::BadCharacter(bad));
        }
        if !first.is_ascii_alphanumeric() {
            return Err(QueueNameError::BadStart);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// A comma-separated list (`--queues default,reports`), in the order given, each once.
    pub fn parse_list(raw: &str) -> Result<Vec<Self>, String> {
        let mut names: Vec<Self> = Vec::new();
        for part in raw.split(',') {
            let name = Self::parse(part).map_err(|error| format!("{:?}: {error}", part.trim()))?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// The default queue.
    pub fn default_queue() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for QueueName {
    fn default() -> Self {
        Self::default_queue()
    }
}

impl AsRef<str> for QueueName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_broker_safe_names() {
        for good in ["default", "reports", "gleif-daily", "eu_2", "9am"] {
            assert_eq!(QueueName::parse(good).unwrap().as_str(), good);
        }
        assert_eq!(QueueName::parse("  reports ").unwrap().as_str(), "reports");
    }

    #[test]
    fn refuses_what_a_broker_or_a_reader_would_trip_on() {
        assert_eq!(QueueName::parse(" "), Err(QueueNameError::Empty));
        assert_eq!(QueueName::parse("Reports"), Err(QueueNameError::BadCharacter('R')));
        assert_eq!(QueueName::parse("a.b"), Err(QueueNameError::BadCharacter('.')));
        assert_eq!(QueueName::parse("a b"), Err(QueueNameError::BadCharacter(' ')));
        assert_eq!(QueueName::parse("-x"), Err(QueueNameError::BadStart));
        assert_eq!(QueueName::parse(&"q".repeat(41)), Err(QueueNameError::TooLong));
        assert!(QueueName::parse(&"q".repeat(40)).is_ok());
    }

    #[test]
    fn lists_keep_order_and_drop_repeats() {
        let names = QueueName::parse_list("reports, default,reports").unwrap();
        let names: Vec<&str> = names.iter().map(QueueName::as_str).collect();
        assert_eq!(names, ["reports", "default"]);
        let error = QueueName::parse_list("default,,x").unwrap_err();
        assert!(error.contains("Enter a queue name"), "{error}");
        assert!(QueueName::parse_list("default,Big").unwrap_err().starts_with("\"Big\""));
    }
}
