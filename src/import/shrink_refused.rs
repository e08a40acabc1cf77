//! A refused shrink as data: the numbers of an [`ImportError::Shrink`], kept in the failed run's
//! stats so that the run page can offer to import again accepting the shrink without reading
//! the error's text.

use serde::{Deserialize, Serialize};

use super::ImportError;

/// The shrink guard refused a file: it would have marked `removed` of `active` ISINs inactive
/// (`percent` %), more than the source's `limit` %. `attempt` is the run's attempt it refused,
/// so that a later attempt failing for another reason is not taken for a refusal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShrinkRefused {
    pub removed: u64,
    pub active: i64,
    pub percent: f64,
    pub limit: i32,
    pub attempt: i32,
}

impl ShrinkRefused {
    /// The key of a run's stats object that holds the refusal.
    pub const STATS_KEY: &'static str = "shrink_refused";

    /// The refusal `error` is, if it is one, in the run's attempt `attempt`.
    pub fn of(error: &ImportError, attempt: i32) -> Option<Self> {
        match *error {
            ImportError::Shrink { removed, active, percent, limit } => {
                Some(Self { removed, active, percent, limit, attempt })
            }
            _ => None,
        }
    }

    /// A run's stats (JSON text, if there are any) with this refusal added beside what they hold.
    pub fn added_to(&self, stats: Option<&str>) -> String {
        let mut map = stats
            .and_then(|text| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).ok())
            .unwrap_or_default();
        map.insert(Self::STATS_KEY.to_owned(), serde_json::to_value(self).unwrap_or_default());
        serde_json::Value::Object(map).to_string()
    }

    /// The refusal a run's stats record for its attempt `attempt`, if they record one.
    pub fn in_stats(stats: &serde_json::Map<String, serde_json::Value>, attempt: i32) -> Option<Self> {
        stats
            .get(Self::STATS_KEY)
            .and_then(|value| serde_json::from_value::<Self>(value.clone()).ok())
            .filter(|refused| refused.attempt == attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_read_back_from_the_stats_of_its_own_attempt_only() {
        let error = ImportError::Shrink { removed: 300, active: 1000, percent: 30.0, limit: 20 };
        let refused = ShrinkRefused::of(&error, 2).expect("a shrink error is a refusal");
        let stats = refused.added_to(Some(r#"{"progress":{"rows":5}}"#));
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&stats).unwrap();
        assert!(map.contains_key("progress"), "what the stats held stays");
        assert_eq!(ShrinkRefused::in_stats(&map, 2), Some(refused));
        assert_eq!(ShrinkRefused::in_stats(&map, 3), None);
        assert!(ShrinkRefused::of(&ImportError::Settings("x".into()), 1).is_none());
    }
}
