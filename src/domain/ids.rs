//! Typed ids, so that one table's id cannot be passed where another table's id is expected.
//!
//! Each is an `i64` (the tables' `BIGINT` keys) in a newtype. They serialise as the bare number
//! (`serde(transparent)`), so JSON, the queue's jobs and path segments see what they saw before.
//! The diesel derives only declare that each is stored as a `BIGINT` (diesel needs them on the
//! type); how it is written and read is `crate::models::id_columns`' business.

use std::fmt;
use std::num::ParseIntError;
use std::ops::Deref;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! typed_ids {
    ($($(#[$doc:meta])* $name:ident;)+) => {$(
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            diesel::AsExpression, diesel::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl From<i64> for $name {
            fn from(id: i64) -> Self {
                Self(id)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        /// Parses the bare number, as `i64` does (query strings, the command line).
        impl FromStr for $name {
            type Err = ParseIntError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )+};
}

typed_ids! {
    /// The id of a row in `users`.
    UserId;
    /// The id of a row in `schedules`.
    ScheduleId;
    /// The id of a row in `runs`.
    RunId;
    /// The id of a row in `sources`.
    SourceId;
    /// The id of a row in `api_tokens`.
    ApiTokenId;
    /// The id of a row in `alert_deliveries`.
    DeliveryId;
    /// The id of a row in `audit_log`.
    AuditEntryId;
    /// The id of a row in `login_failures`.
    LoginFailureId;
    /// The id of a row in `source_files`.
    SourceFileId;
    /// The id of a row in `schedule_skips`.
    SkipId;
    /// The id of a row in `reconciliation_builds`.
    ReconciliationBuildId;
}

/// The key of a row in `workers`, also written on the runs the worker takes: host, process and
/// a random tag (`worker@host:pid:tag`). Unlike the other tables' keys it is text.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    diesel::AsExpression,
    diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(transparent)]
pub struct WorkerName(pub String);

impl WorkerName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for WorkerName {
    fn from(name: String) -> Self {
        Self(name)
    }
}

impl From<&str> for WorkerName {
    fn from(name: &str) -> Self {
        Self(name.to_owned())
    }
}

// A worker's name is read as text wherever it is shown or taken apart (the runs pages, the
// process tests' pid lookup), so it derefs to its text like a `String` does.
impl Deref for WorkerName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for WorkerName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_serialises_and_prints_as_its_bare_number() {
        assert_eq!(serde_json::to_value(RunId(42)).ok(), Some(serde_json::json!(42)));
        assert_eq!(serde_json::from_str::<ScheduleId>("7").ok(), Some(ScheduleId(7)));
        assert_eq!(SourceId(3).to_string(), "3");
    }
}
