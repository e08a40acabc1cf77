//! Secrets inside URLs, masked for showing: a password in the user part (`https://user:•••@host/`),
//! credentials in the query (`?token=•••`), and the whole path of a webhook (whose path is its
//! secret, as with Slack's). Used wherever a URL reaches a page, a run's log or error, an alert
//! text, an API answer or a log line for someone who is not an admin; the stored value is never
//! changed.

use std::borrow::Cow;

/// What stands in for a hidden secret.
pub const MASK: &str = "•••";

/// Query parameter names (lower case) whose value is a credential, by the words they contain.
const SECRET_WORDS: &[&str] =
    &["token", "key", "secret", "pass", "pwd", "sig", "auth", "cred", "session", "code", "ticket"];

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| name.contains(word))
}

/// `raw` with the password of its user part (or a user part that is all there is, such as a
/// token) and every credential in its query replaced by [`MASK`]. Text that is not an http(s)
/// URL comes back as it is.
pub fn mask_url_secrets(raw: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = split_scheme(raw) else { return Cow::Borrowed(raw) };
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => Cow::Owned(format!("{user}:{MASK}@{host}")),
            None => Cow::Owned(format!("{MASK}@{host}")),
        },
        None => Cow::Borrowed(authority),
    };
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (tail, None),
    };
    let query = before_fragment.split_once('?').map(|(path, query)| (path, mask_query(query)));
    let changed = matches!(authority, Cow::Owned(_))
        || query.as_ref().is_some_and(|(_, masked)| matches!(masked, Cow::Owned(_)))
        || fragment.is_some_and(|f| f.contains('=') && mask_query(f) != f);
    if !changed {
        return Cow::Borrowed(raw);
    }
    let mut out = format!("{scheme}://{authority}");
    match &query {
        Some((path, masked)) => {
            out.push_str(path);
            out.push('?');
            out.push_str(masked);
        }
        None => out.push_str(before_fragment),
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(&mask_query(fragment));
    }
    Cow::Owned(out)
}

/// A webhook URL for showing: its scheme and host only, since the path of a webhook is usually
/// its secret (`https://hooks.example.org/•••`).
pub fn mask_webhook_url(raw: &str) -> String {
    let Some((scheme, rest)) = split_scheme(raw) else { return MASK.to_owned() };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}/{MASK}")
}

/// `text` with every http(s) URL in it passed through [`mask_url_secrets`]: for error messages
/// and log lines that quote URLs.
pub fn mask_urls_in_text(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(start) = find_url_start(rest) {
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '(' | ')' | '“' | '”' | '`')
            })
            .unwrap_or(candidate.len());
        let masked = mask_url_secrets(&candidate[..end]);
        changed |= matches!(masked, Cow::Owned(_));
        out.push_str(&masked);
        rest = &candidate[end..];
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn find_url_start(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    [lower.find("http://"), lower.find("https://")].into_iter().flatten().min()
}

fn split_scheme(raw: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = raw.split_once("://")?;
    (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")).then_some((scheme, rest))
}

fn mask_query(query: &str) -> Cow<'_, str> {
    if !query.split('&').any(|pair| pair.split_once('=').is_some_and(|(name, _)| is_secret_name(name))) {
        return Cow::Borrowed(query);
    }
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_name(name) => format!("{name}={MASK}"),
            _ => pair.to_owned(),
        })
        .collect();
    Cow::Owned(pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_query_credentials_are_masked() {
        assert_eq!(
            mask_url_secrets("https://user:hunter2@files.example.org/a.zip"),
            "https://user:•••@files.example.org/a.zip"
        );
        assert_eq!(
            mask_url_secrets("https://ghp_abc@files.example.org/a.zip"),
            "https://•••@files.example.org/a.zip"
        );
        assert_eq!(
            mask_url_secrets("https://api.example.org/v1/isins?date=2026-12-06&token=s3cr3t&API_KEY=k#x"),
            "https://api.example.org/v1/isins?date=2026-12-06&token=•••&API_KEY=•••#x"
        );
        assert_eq!(
            mask_url_secrets("https://example.org/p?X-Amz-Signature=abc"),
            "https://example.org/p?X-Amz-Signature=•••"
        );
        assert_eq!(mask_url_secrets("https://example.org/a.zip?page=2"), "https://example.org/a.zip?page=2");
        assert!(matches!(mask_url_secrets("https://example.org/a.zip"), Cow::Borrowed(_)));
        assert_eq!(mask_url_secrets("/data/isins.csv"), "/data/isins.csv");
        assert_eq!(mask_url_secrets("bundled:sample"), "bundled:sample");
    }

    #[test]
    fn webhooks_show_their_host_only() {
        assert_eq!(
            mask_webhook_url("https://hooks.slack.com/services/T0/B0/XXXX"),
            "https://hooks.slack.com/•••"
        );
        assert_eq!(
            mask_webhook_url("http://u:p@alerts.example.org:8080/x?y"),
            "http://alerts.example.org:8080/•••"
        );
        assert_eq!(mask_webhook_url("not a url"), MASK);
    }

    #[test]
    fn urls_inside_text_are_masked() {
        let text = "run 3: https://u:pw@a.example/x.csv answered HTTP 500 (see http://b.example/?token=t)";
        assert_eq!(
            mask_urls_in_text(text),
            "run 3: https://u:•••@a.example/x.csv answered HTTP 500 (see http://b.example/?token=•••)"
        );
        assert!(matches!(mask_urls_in_text("no link here"), Cow::Borrowed(_)));
    }
}
