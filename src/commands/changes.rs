//! `isinbeat changes [--after CURSOR] [--limit N]`: the change feed as JSON lines, one change per
//! line exactly as `GET /api/v1/changes` gives it, from the beginning or after a cursor, until
//! the feed (or `--limit`) ends. Each line carries the `cursor` that resumes after it: a script
//! keeps the last one it processed and passes it as `--after` next time.

use std::io::{BufWriter, Write};

use anyhow::Context;

use crate::browse::feed;
use crate::domain::feed_cursor::FeedCursor;

/// Prints the changes after `after` (at most `limit` when given).
pub fn changes(after: &str, limit: Option<u64>) -> anyhow::Result<()> {
    let mut cursor: FeedCursor = after.parse()?;
    let settings = super::load_settings()?;
    let pool = super::migrated_pool_sized(&settings, 1)?;
    let mut conn = pool.get().context("Failed to get a database connection")?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut left = limit.unwrap_or(u64::MAX);
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(feed::MAX_LIMIT);
        let page = feed::read(&mut conn, &cursor, want).context("Failed to read the change feed")?;
        for change in &page.changes {
            serde_json::to_writer(&mut out, change).context("Failed to write a change")?;
            out.write_all(b"\n").context("Failed to write a change")?;
        }
        left -= page.changes.len() as u64;
        cursor = page.next.parse()?;
        if !page.more {
            break;
        }
    }
    out.flush().context("Failed to write the changes")?;
    Ok(())
}
