//! `gleif_api`: GLEIF's ISIN-to-LEI files, listed by a paged JSON:API listing that is not in
//! date order. Every page is read (following `links.next`), and the file taken is the one with
//! the greatest timestamp in its name, `isin-lei-YYYYMMDDTHHMMSS.zip`. Entries named otherwise
//! are ignored; if the newest cannot be used, the run fails rather than take an older one (an
//! older full snapshot would make newer ISINs look removed).

use std::collections::HashSet;

use chrono::NaiveDateTime;
use serde::Deserialize;

use super::{LocateError, Located, MAX_PAGES, download_location, get_page, page_client};
use crate::domain::mask_url_secrets;
use crate::sources::fetch::Limits;
use crate::sources::outbound::OutboundPolicy;

#[derive(Debug, Deserialize)]
struct ListingPage {
    data: Vec<Entry>,
    #[serde(default)]
    links: Links,
}

#[derive(Debug, Default, Deserialize)]
struct Links {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(default)]
    attributes: Attributes,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Attributes {
    file_name: Option<String>,
    download_link: Option<String>,
}

/// A listed file whose name carries a timestamp.
struct Candidate {
    published: NaiveDateTime,
    name: String,
    link: Option<url::Url>,
}

/// The timestamp in a GLEIF file name, if it is named like one.
fn timestamp_of(name: &str) -> Option<NaiveDateTime> {
    let stamp = name.strip_prefix("isin-lei-")?.strip_suffix(".zip")?;
    let well_formed = stamp.len() == 15
        && stamp.bytes().enumerate().all(|(i, b)| if i == 8 { b == b'T' } else { b.is_ascii_digit() });
    if !well_formed {
        return None;
    }
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S").ok()
}

/// The newest file of the listing at `listing`.
pub(super) async fn locate(
    listing: &url::Url,
    files_base: Option<&url::Url>,
    policy: &OutboundPolicy,
    limits: &Limits,
) -> Result<Located, LocateError> {
    let shown = mask_url_secrets(listing.as_str()).into_owned();
    let client = page_client(policy, limits)?;
    let mut next = Some(listing.clone());
    let mut seen = HashSet::new();
    let (mut pages, mut entries) = (0, 0);
    let mut newest: Option<Candidate> = None;
    let mut tied: Option<String> = None;
    while let Some(url) = next.take() {
        if pages >= MAX_PAGES || !seen.insert(url.to_string()) {
            return Err(LocateError::Endless { url: shown, pages });
        }
        pages += 1;
        let page = get_page(&client, &url, limits).await?;
        let parsed = read_page(&page.body).map_err(|message| LocateError::Listing {
            url: mask_url_secrets(url.as_str()).into_owned(),
            message,
        })?;
        entries += parsed.data.len();
        for entry in parsed.data {
            let Some(name) = entry.attributes.file_name else { continue };
            let Some(published) = timestamp_of(&name) else { continue };
            let link = entry
                .attributes
                .download_link
                .and_then(|link| page.url.join(link.trim()).ok())
                .filter(|link| matches!(link.scheme(), "http" | "https"));
            match &newest {
                Some(best) if best.published > published => {}
                Some(best) if best.published == published => {
                    if best.link != link {
                        tied = Some(name);
                    }
                }
                _ => {
                    tied = None;
                    newest = Some(Candidate { published, name, link });
                }
            }
        }
        next = match parsed.links.next.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(link) => Some(next_page(listing, &page.url, link).map_err(|message| {
                LocateError::Listing { url: mask_url_secrets(url.as_str()).into_owned(), message }
            })?),
        };
    }
    let Some(newest) = newest else {
        return Err(LocateError::NoFile { url: shown, entries, pages });
    };
    if let Some(name) = tied {
        return Err(LocateError::NewestUnusable {
            url: shown,
            message: format!("two entries named {name} have different download links"),
        });
    }
    let Some(link) = newest.link else {
        return Err(LocateError::NewestUnusable {
            url: shown,
            message: format!("the newest file, {}, has no usable downloadLink", newest.name),
        });
    };
    Ok(Located {
        location: download_location(&link, files_base),
        name: newest.name,
        published: Some(newest.published),
        listed_url: link.to_string(),
    })
}

fn read_page(body: &str) -> Result<ListingPage, String> {
    serde_json::from_str(body).map_err(|e| {
        let single = serde_json::from_str::<serde_json::Value>(body)
            .is_ok_and(|value| value.get("data").is_some_and(serde_json::Value::is_object));
        if single {
            "it names one file, not a list: use the listing's address (…/isin-lei), not …/latest".to_owned()
        } else {
            format!("{e}")
        }
    })
}

/// The address of the next page. The listing's links name the publisher's host; when a mirror
/// or a local server answers for it (another host), its paging query is asked of the listing's
/// own address instead.
fn next_page(listing: &url::Url, page: &url::Url, next: &str) -> Result<url::Url, String> {
    let link = page.join(next).map_err(|e| format!("its next link {next:?} is not an address: {e}"))?;
    if link.origin() == listing.origin() {
        return Ok(link);
    }
    let mut same_place = listing.clone();
    same_place.set_query(link.query());
    Ok(same_place)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_with_a_timestamp_count() {
        let stamp = |s| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(timestamp_of("isin-lei-20250107T071509.zip"), Some(stamp("2025-01-07 07:15:09")));
        assert_eq!(timestamp_of("isin-lei-20250107.zip"), None);
        assert_eq!(timestamp_of("isin-lei-20251307T071509.zip"), None, "no 13th month");
        assert_eq!(timestamp_of("lei-isin-20250107T071509.zip"), None);
        assert_eq!(timestamp_of("isin-lei-+0250107T071509.zip"), None);
    }

    #[test]
    fn paging_stays_on_the_listings_host() {
        let listing = url::Url::parse("http://127.0.0.1:9/mirror/api/v2/isin-lei").unwrap();
        let next = "https://mapping.gleif.org/api/v2/isin-lei?page%5Bnumber%5D=2&page%5Bsize%5D=3";
        assert_eq!(
            next_page(&listing, &listing, next).unwrap().as_str(),
            "http://127.0.0.1:9/mirror/api/v2/isin-lei?page%5Bnumber%5D=2&page%5Bsize%5D=3"
        );
        let gleif = url::Url::parse("https://mapping.gleif.org/api/v2/isin-lei").unwrap();
        assert_eq!(next_page(&gleif, &gleif, next).unwrap().as_str(), next);
        assert_eq!(
            next_page(&gleif, &gleif, "?page=3").unwrap().as_str(),
            "https://mapping.gleif.org/api/v2/isin-lei?page=3"
        );
    }

    #[test]
    fn a_single_file_answer_is_named_as_such() {
        let latest =
            r#"{"data": {"type": "isin-lei", "attributes": {"fileName": "isin-lei-20250107T071509.zip"}}}"#;
        assert!(read_page(latest).unwrap_err().contains("…/latest"));
        assert!(read_page("<html>").is_err());
    }
}
