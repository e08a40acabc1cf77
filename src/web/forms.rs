//! Form plumbing: the messages shown beside fields, the safe `next=` target, and a list
//! page's filters as a query string.

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

/// A list page's filters as a query string, for its links (sort, next page): the pairs whose
/// value is not empty, in order. The caller appends the link's own pairs and calls `finish`.
pub fn filter_query<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> url::form_urlencoded::Serializer<'static, String> {
    let mut params = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if !value.is_empty() {
            params.append_pair(name, value);
        }
    }
    params
}

#[cfg(test)]
mod tests {
    use super::{filter_query, safe_next};

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

    #[test]
    fn filters_leave_out_empty_values_and_are_escaped() {
        let mut query = filter_query([("q", "a&b"), ("status", ""), ("queue", "eu")]);
        query.append_pair("before", "7");
        assert_eq!(query.finish(), "q=a%26b&queue=eu&before=7");
    }
}
