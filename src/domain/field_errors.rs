//! Messages keyed by the field they are about: what parsing a form's fields (or an entry of a
//! settings file read as those fields) says is wrong, one message per field.

use std::collections::BTreeMap;

/// Messages per field, shown beside the field (or, by `schedules apply` and `sources apply`,
/// with the file's key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    /// Adds a message for `field`; the first one for a field is the one shown.
    pub fn add(&mut self, field: impl Into<String>, message: impl ToString) {
        self.0.entry(field.into()).or_insert_with(|| message.to_string());
    }

    /// The message for `field`, if any.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every `(field, message)`, by field.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(field, message)| (field.as_str(), message.as_str()))
    }
}
