//! Reading FIRDS file lists over HTTP, through the outbound policy: one day's pages from the
//! source's list address, or from its second address when the first cannot be read.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::NaiveDate;
use futures_util::StreamExt;
use url::Url;

use super::list::{DayCollector, DayList, DayLister, ListError, ListSettings};
use super::solr::{page_url, parse_page};
use crate::sources::fetch::Limits;
use crate::sources::outbound::{OutboundClient, OutboundPolicy};

/// The largest page accepted (a page of 100 documents is about 70 kB).
const PAGE_MAX_BYTES: u64 = 8 << 20;

/// Lists days over HTTP, through the outbound policy. When the first list address fails and a
/// second one is set, the day is read from the second; after that the second is asked first for
/// the later days of the same run (so a dead address costs one timeout per run, not per day).
#[derive(Debug)]
pub struct HttpLister {
    settings: ListSettings,
    policy: OutboundPolicy,
    limits: Limits,
    second_first: AtomicBool,
}

impl HttpLister {
    pub fn new(settings: ListSettings, policy: OutboundPolicy, limits: Limits) -> Self {
        Self { settings, policy, limits, second_first: AtomicBool::new(false) }
    }

    /// The files listed for `date`.
    pub async fn list_day_async(&self, date: NaiveDate) -> Result<DayList, ListError> {
        let first = &self.settings.list_url;
        let client =
            self.policy.client(self.limits.connect_timeout, Some(self.limits.read_timeout)).map_err(|e| {
                ListError::Request { date, url: shown(first), message: format!("cannot set up HTTP: {e}") }
            })?;
        let Some(second) = &self.settings.second_list_url else {
            return self.list_from(&client, first, date).await;
        };
        let swapped = self.second_first.load(Ordering::Relaxed);
        let (primary, fallback) = if swapped { (second, first) } else { (first, second) };
        match self.list_from(&client, primary, date).await {
            Err(failed) if failed.address_failed() => {
                tracing::warn!(error = %failed, "the FIRDS list failed; asking {}", shown(fallback));
                match self.list_from(&client, fallback, date).await {
                    Ok(list) => {
                        self.second_first.store(!swapped, Ordering::Relaxed);
                        Ok(list)
                    }
                    Err(also) => {
                        Err(ListError::BothFailed { first: Box::new(failed), second: Box::new(also) })
                    }
                }
            }
            other => other,
        }
    }

    async fn list_from(
        &self,
        client: &OutboundClient,
        list_url: &Url,
        date: NaiveDate,
    ) -> Result<DayList, ListError> {
        let mut collector = DayCollector::new(date, self.settings.files_base.clone());
        let cap = self.limits.max_bytes.min(PAGE_MAX_BYTES);
        while let Some(start) = collector.next_start() {
            let url = page_url(list_url, date, self.settings.format, start, self.settings.rows.max(1));
            let body = get_page(client, &url, cap).await.map_err(|message| ListError::Request {
                date,
                url: shown(list_url),
                message,
            })?;
            let page = parse_page(&body, self.settings.format).map_err(|message| ListError::Answer {
                date,
                url: shown(list_url),
                message,
            })?;
            collector.add(page)?;
        }
        Ok(collector.finish())
    }
}

impl DayLister for HttpLister {
    /// [`HttpLister::list_day_async`] on a small runtime in a thread of its own, so it works
    /// whether or not the caller is inside a runtime.
    fn list_day(&self, date: NaiveDate) -> Result<DayList, ListError> {
        let failed =
            |message: String| ListError::Request { date, url: shown(&self.settings.list_url), message };
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| failed(format!("cannot start the HTTP runtime: {e}")))?
                        .block_on(self.list_day_async(date))
                })
                .join()
                .unwrap_or_else(|_| Err(failed("the listing thread panicked".to_owned())))
        })
    }
}

/// A URL as messages show it: without its credentials.
fn shown(url: &Url) -> String {
    crate::domain::mask_url_secrets(url.as_str()).into_owned()
}

/// The body of a successful GET of `url`, at most `cap` bytes.
async fn get_page(client: &OutboundClient, url: &Url, cap: u64) -> Result<Vec<u8>, String> {
    let request = client.get(url).map_err(|e| format!("refused: {e}"))?;
    // `*/*` as for downloads: some publishers' APIs refuse a narrower Accept.
    let response = request
        .header(reqwest::header::ACCEPT, "*/*")
        .send()
        .await
        .map_err(|e| crate::sources::fetch::describe(&e))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let detail: String = body.trim().chars().take(200).collect();
        let detail = crate::domain::mask_urls_in_text(&detail).into_owned();
        return Err(if detail.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {detail}")
        });
    }
    let too_large = || format!("the answer is larger than {cap} bytes");
    if response.content_length().is_some_and(|length| length > cap) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| crate::sources::fetch::describe(&e))?;
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
