//! `page_link`: fetch a web page and follow the one link whose text or address matches the
//! source's pattern. Links are resolved as a browser resolves them (against the page's final
//! address, or its `<base href>`); exactly one distinct address must match.

use std::collections::BTreeSet;

use scraper::{ElementRef, Html};

use super::{LocateError, Located, download_location, get_page, page_client, url_file_name};
use crate::domain::mask_url_secrets;
use crate::sources::fetch::Limits;
use crate::sources::outbound::OutboundPolicy;

/// The one file `page` links to under `pattern`.
pub(super) async fn locate(
    page: &url::Url,
    pattern: &str,
    files_base: Option<&url::Url>,
    policy: &OutboundPolicy,
    limits: &Limits,
) -> Result<Located, LocateError> {
    let regex = regex::Regex::new(pattern).map_err(|e| {
        LocateError::Settings(format!("the pattern {pattern:?} is not a regular expression: {e}"))
    })?;
    let client = page_client(policy, limits)?;
    let fetched = get_page(&client, page, limits).await?;
    let matched = matching_links(&fetched.body, &fetched.url, &regex);
    let shown_page = mask_url_secrets(page.as_str()).into_owned();
    let mut found = matched.into_iter();
    match (found.next(), found.next()) {
        (None, _) => Err(LocateError::NoLink { page: shown_page, pattern: format!("“{pattern}”") }),
        (Some(link), None) => Ok(Located {
            location: download_location(&link, files_base),
            name: url_file_name(&link),
            published: None,
            listed_url: link.to_string(),
        }),
        (Some(first), Some(second)) => {
            let links = [first, second]
                .into_iter()
                .chain(found)
                .map(|link| mask_url_secrets(link.as_str()).into_owned())
                .collect();
            Err(LocateError::SeveralLinks { page: shown_page, pattern: format!("“{pattern}”"), links })
        }
    }
}

/// The distinct http(s) addresses of the `<a href>` links of `html` whose text (whitespace
/// collapsed), `href` as written or resolved address matches `regex`, in address order.
fn matching_links(html: &str, page_url: &url::Url, regex: &regex::Regex) -> BTreeSet<url::Url> {
    let document = Html::parse_document(html);
    let elements: Vec<ElementRef<'_>> =
        document.root_element().descendants().filter_map(ElementRef::wrap).collect();
    // A `<base href>` changes what relative links resolve against, for a browser too.
    let base = elements
        .iter()
        .find(|element| element.value().name() == "base")
        .and_then(|element| element.value().attr("href"))
        .and_then(|href| page_url.join(href.trim()).ok())
        .unwrap_or_else(|| page_url.clone());
    let mut found = BTreeSet::new();
    for element in elements.iter().filter(|element| element.value().name() == "a") {
        let Some(href) = element.value().attr("href").map(str::trim) else { continue };
        let Ok(mut resolved) = base.join(href) else { continue };
        if !matches!(resolved.scheme(), "http" | "https") {
            continue;
        }
        resolved.set_fragment(None);
        let text = element.text().flat_map(str::split_whitespace).collect::<Vec<_>>().join(" ");
        if regex.is_match(&text) || regex.is_match(href) || regex.is_match(resolved.as_str()) {
            found.insert(resolved);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::locator::XETRA_ALL_TRADABLE_PATTERN;

    const PAGE: &str = "https://shop.example/cash/trading/Downloads";

    fn links(html: &str, pattern: &str) -> Vec<String> {
        let page = url::Url::parse(PAGE).unwrap();
        matching_links(html, &page, &regex::Regex::new(pattern).unwrap())
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn relative_links_are_resolved_and_matched_by_address_or_text() {
        let html = r#"<html><body>
            <a href="/cash/trading/All">All tradable instruments</a>
            <a href="/blob/1/abc/data/t7-xetr-allTradableInstruments.csv" class="icon download">
              <span class="title"> T7 (XETR) All tradable instruments </span></a>
            <a href="../blob/2/def/data/t7-xfra-BF-allTradableInstruments.csv">T7 (XFRA)   All
              tradable instruments</a>
            <a href="mailto:desk@shop.example">T7-XETR-allTradableInstruments.csv</a>
        </body></html>"#;
        assert_eq!(
            links(html, XETRA_ALL_TRADABLE_PATTERN),
            ["https://shop.example/blob/1/abc/data/t7-xetr-allTradableInstruments.csv"]
        );
        assert_eq!(
            links(html, r"^T7 \(XFRA\) All tradable"),
            ["https://shop.example/cash/blob/2/def/data/t7-xfra-BF-allTradableInstruments.csv"]
        );
        assert_eq!(links(html, "allTradableInstruments").len(), 2, "the mailto link is not a file");
        assert!(links(html, "nothing-like-this").is_empty());
    }

    #[test]
    fn the_same_address_twice_is_one_link_and_base_href_is_obeyed() {
        let html = r#"<head><base href="https://files.example/dl/"></head>
            <a href="x.csv">x</a><a href="https://files.example/dl/x.csv#top">again</a>"#;
        assert_eq!(links(html, r"x\.csv"), ["https://files.example/dl/x.csv"]);
    }
}
