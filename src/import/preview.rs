//! The “test source” button's preview: a source's file fetched and read to the end within a
//! deadline, keeping its first rows and problems, without writing anything.

use std::time::Instant;

use super::read::READ_BATCH;
use super::{ImportError, Options, Problem, keep_problem};
use crate::models::source::Source;
use crate::sources::decompress::{self, Container};
use crate::sources::fetch::{self, Fetched, Previous};
use crate::sources::formats::{self, Format, FormatOptions, Item, Row};

/// What a source's file holds, read without importing anything (the “test source” button).
#[derive(Debug, Clone, Default)]
pub struct Preview {
    pub bytes: u64,
    pub member: Option<String>,
    /// The file the source's locator found (none for a fixed URL).
    pub file: Option<super::LocatedFile>,
    /// The first [`PREVIEW_ROWS`] valid rows.
    pub rows: Vec<Row>,
    pub rows_read: u64,
    pub valid: u64,
    pub invalid: u64,
    /// The first [`MAX_PROBLEMS`](super::MAX_PROBLEMS) invalid lines.
    pub problems: Vec<Problem>,
    pub not_modified: bool,
}

/// Valid rows a preview shows.
pub const PREVIEW_ROWS: usize = 20;

/// How long "Test source" may take, download and reading together.
pub const PREVIEW_SECONDS: u64 = 60;

/// Fetches `source`'s file (unconditionally) and reads all of it, keeping the first rows and
/// problems, within `options`' caps and policy and before `deadline`. Writes nothing.
pub fn preview(source: &Source, options: &Options, deadline: Instant) -> Result<Preview, ImportError> {
    let format = Format::parse(&source.format)
        .ok_or_else(|| ImportError::Settings(format!("unknown format “{}”", source.format)))?;
    let format_options = FormatOptions::from_json(&source.options).map_err(ImportError::Settings)?;
    let (location, file) = super::locate(source, options)?;
    let out_of_time = || {
        ImportError::Stopped(format!(
            "the test took longer than {} s; an import run is not limited this way",
            PREVIEW_SECONDS
        ))
    };
    let mut preview = Preview { file, ..Preview::default() };
    let before_deadline =
        |_, _| if Instant::now() < deadline { Ok(()) } else { Err(out_of_time().to_string()) };
    let content = match fetch::fetch_blocking(
        &location,
        &options.outbound,
        Previous::default(),
        &options.limits,
        &before_deadline,
    )? {
        Fetched::Content(content) => content,
        Fetched::NotModified => {
            preview.not_modified = true;
            return Ok(preview);
        }
    };
    preview.bytes = content.bytes;
    let (container, input) =
        decompress::open(&content.path, format_options.member.as_deref(), options.max_uncompressed_bytes)?;
    if let Container::Zip { member } = container {
        preview.member = Some(member);
    }
    let mut reader = formats::open_reader(format, &format_options, input)?;
    while let Some(item) = reader.next_item()? {
        preview.rows_read += 1;
        if preview.rows_read.is_multiple_of(READ_BATCH as u64) && Instant::now() >= deadline {
            return Err(out_of_time());
        }
        match item {
            Item::Row(row) => {
                preview.valid += 1;
                if preview.rows.len() < PREVIEW_ROWS {
                    preview.rows.push(row);
                }
            }
            Item::Rejected(rejected) => {
                preview.invalid += 1;
                keep_problem(&mut preview.problems, rejected);
            }
        }
    }
    Ok(preview)
}
