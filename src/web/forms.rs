//! Form plumbing: the messages shown beside fields, and the safe `next=` target.

use std::collections::BTreeMap;

/// Messages per form field, shown beside the field; `__all__` holds form-wide messages.
#[derive(Debug, Clone, Default)]
pub struct FormErrors(BTreeMap<String, String>);

impl FormErrors {
    /// Adds a message for `field`; the first one for a field is the one shown.
    pub fn add(&mut self, field: impl Into<String>, message: impl ToString) {
        self.0.entry(field.into()).or_insert_with(|| message.to_string());
    }

    /// The message for `field`, if any (templates call this).
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

/// The `next` target if it is a path on this site; otherwise the dashboard. Refuses
/// `//evil.example`, `/\evil.example` and absolute URLs, which browsers would leave the site for,
/// and anything but printable ASCII (which a `Location` header cannot carry as it is; the paths
/// the admin links to are percent-encoded).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.starts_with("/\\")
                && next.chars().all(|c| c.is_ascii_graphic() && c != '\\') =>
        {
            next.to_owned()
        }
        _ => "/admin/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_only_goes_to_local_paths() {
        assert_eq!(safe_next(Some("/admin/users/")), "/admin/users/");
        assert_eq!(safe_next(Some("/admin/audit/?actor=admin")), "/admin/audit/?actor=admin");
        assert_eq!(safe_next(Some("https://evil.example/")), "/admin/");
        assert_eq!(safe_next(Some("//evil.example/")), "/admin/");
        assert_eq!(safe_next(Some("/\\evil.example/")), "/admin/");
        assert_eq!(safe_next(Some("/x\\y")), "/admin/");
        assert_eq!(safe_next(Some("/é")), "/admin/");
        assert_eq!(safe_next(Some("/a b")), "/admin/");
        assert_eq!(safe_next(None), "/admin/");
    }
}
