//! Reading the change feed through `GET /api/v1/changes` as a consumer does (not a test: figures
//! for BENCHMARKS.md; `benches/feed.sh` prepares the database and the server and calls it).
//!
//! ```text
//! cargo bench --bench feed -- read http://127.0.0.1:8000 TOKEN [LIMIT]
//! ```
//!
//! One client on one kept-alive connection reads the feed from the beginning, `LIMIT` changes a
//! page (10,000 by default), parsing each page's JSON and following its `next` until `more` is
//! false. It prints the changes, the pages, the seconds and the changes per second.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Instant;

use serde::Deserialize;
use serde::de::IgnoredAny;

/// What a consumer needs from a page: how many changes it held and where to go on.
#[derive(Deserialize)]
struct Page {
    changes: Vec<IgnoredAny>,
    next: String,
    more: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.first().map(String::as_str) {
        Some("read") if args.len() >= 3 => {
            let limit = args.get(3).map_or(10_000, |l| l.parse().expect("LIMIT is a number"));
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(read(&args[1], &args[2], limit));
        }
        _ => eprintln!("usage: read BASE_URL TOKEN [LIMIT]"),
    }
}

async fn read(base: &str, token: &str, limit: usize) {
    isinbeat::sources::outbound::install_tls_provider();
    let client = reqwest::Client::new();
    let (mut changes, mut pages, mut bytes) = (0_usize, 0_usize, 0_usize);
    let mut cursor = String::from("0");
    let started = Instant::now();
    loop {
        let body = client
            .get(format!("{base}/api/v1/changes?after={cursor}&limit={limit}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let page: Page = serde_json::from_slice(&body).unwrap();
        changes += page.changes.len();
        pages += 1;
        bytes += body.len();
        cursor = page.next;
        if !page.more {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "API: {changes} changes in {pages} pages ({:.0} MB), {seconds:.2} s, {:.0} changes/s",
        bytes as f64 / 1e6,
        changes as f64 / seconds
    );
}
