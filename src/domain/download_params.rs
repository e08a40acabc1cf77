//! The parameters of a `download_isins` run or schedule, read from their JSON text in one place
//! (the job, the source's schedules and the source's runs all ask what they name).

use chrono::NaiveDate;
use serde_json::{Map, Value};

/// What a `download_isins` task is asked to do: which source, and the manual-import overrides.
/// Parameters are stored as a JSON object of strings; anything else reads as empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// The source's name, trimmed; `None` when the parameters have no `source` text.
    pub source: Option<String>,
    /// Import even an unchanged file (`"force": "yes"`).
    pub force: bool,
    /// Let the file mark more ISINs inactive than the shrink guard allows
    /// (`"accept_shrink": "yes"`).
    pub accept_shrink: bool,
    /// The run's logical date (`"date": "YYYY-MM-DD"`): the day whose publication a dated
    /// source (a URL template, ESMA FIRDS) brings the source up to. `None`: the day the run
    /// starts. Backfills and `isinbeat import --source NAME --date D` set it.
    pub date: Option<NaiveDate>,
}

impl Params {
    /// From stored JSON text; text that is not a JSON object names nothing.
    pub fn parse(json: &str) -> Self {
        serde_json::from_str::<Value>(json).map(|value| Self::from_value(&value)).unwrap_or_default()
    }

    /// From a parsed JSON value (what a worker hands the task).
    pub fn from_value(value: &Value) -> Self {
        let text = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or("").trim();
        Self {
            source: value.get("source").and_then(Value::as_str).map(|name| name.trim().to_owned()),
            force: text("force") == "yes",
            accept_shrink: text("accept_shrink") == "yes",
            date: NaiveDate::parse_from_str(text("date"), "%Y-%m-%d").ok(),
        }
    }

    /// The parameters of a manual import of `source`.
    pub fn importing(source: &str) -> Self {
        Self { source: Some(source.to_owned()), ..Self::default() }
    }

    /// The source's name, empty when none was chosen.
    pub fn source_name(&self) -> &str {
        self.source.as_deref().unwrap_or_default()
    }

    /// As stored: the overrides are written only when set.
    pub fn to_json(&self) -> String {
        let mut map = Map::new();
        if let Some(source) = &self.source {
            map.insert("source".to_owned(), Value::String(source.clone()));
        }
        if self.force {
            map.insert("force".to_owned(), Value::String("yes".to_owned()));
        }
        if self.accept_shrink {
            map.insert("accept_shrink".to_owned(), Value::String("yes".to_owned()));
        }
        if let Some(date) = self.date {
            map.insert("date".to_owned(), Value::String(date.format("%Y-%m-%d").to_string()));
        }
        Value::Object(map).to_string()
    }

    /// Whether these parameters download `source_name`.
    pub fn names_source(&self, source_name: &str) -> bool {
        self.source.as_deref() == Some(source_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_is_read_trimmed_and_anything_else_names_nothing() {
        let found = Params::parse(r#"{"source": " GLEIF ", "force": "yes"}"#);
        assert!(found.names_source("GLEIF"));
        assert!(found.force && !found.accept_shrink);
        assert!(!Params::parse("not json").names_source(""));
        assert_eq!(Params::parse("[1]"), Params::default());
    }

    #[test]
    fn a_manual_import_writes_only_what_is_set() {
        let plain = Params::importing("X");
        assert_eq!(plain.to_json(), r#"{"source":"X"}"#);
        let both = Params { force: true, accept_shrink: true, ..plain };
        let written: Value = serde_json::from_str(&both.to_json()).unwrap();
        assert_eq!(written, serde_json::json!({"source": "X", "force": "yes", "accept_shrink": "yes"}));
        assert_eq!(Params::parse(&both.to_json()), both);
        let dated = Params { date: NaiveDate::from_ymd_opt(2025, 1, 6), ..Params::importing("X") };
        assert_eq!(dated.to_json(), r#"{"date":"2025-01-06","source":"X"}"#);
        assert_eq!(Params::parse(&dated.to_json()), dated);
        assert_eq!(Params::parse(r#"{"source":"X","date":"6 Jan"}"#).date, None);
    }
}
