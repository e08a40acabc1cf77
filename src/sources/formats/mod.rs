//! The file layouts isinbeat reads (GLEIF ISIN-to-LEI, ESMA FIRDS FULINS, Xetra's tradable
//! instruments, a generic CSV), their per-source options, and one streaming reader per layout.
//!
//! A reader yields one [`Item`] at a time: a valid [`Row`], or a [`Rejected`] line with the reason
//! a person needs to fix it. Nothing is trimmed, upper-cased or repaired. Duplicates are not a
//! reader's business: it reports each line's validity, and the import decides what a repeat means.
//! A [`FormatError`] means the whole file is unusable.

pub mod bounded;
mod csv;
pub mod firds;
mod gleif;
mod xetra;

use std::fmt;
use std::io::BufRead;

use crate::domain::{Isin, Lei};
use bounded::{Boundary, LineCapped};

/// The layouts isinbeat reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// GLEIF's ISIN-to-LEI relationship file: `LEI,ISIN`, one pair per line.
    GleifIsinLei,
    /// ESMA FIRDS full reference data (FULINS): XML, one `RefData` per (ISIN, venue).
    FirdsFulins,
    /// Deutsche Börse's "All tradable instruments" for Xetra: `;`-separated, columns by name.
    XetraInstruments,
    /// Any delimited file, with its columns named in the source's options.
    Csv,
}

impl Format {
    /// Every format, in the order they are offered to people.
    pub const ALL: [Format; 4] =
        [Format::GleifIsinLei, Format::FirdsFulins, Format::XetraInstruments, Format::Csv];

    /// The stable name stored in the database and used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::GleifIsinLei => "gleif_isin_lei",
            Format::FirdsFulins => "firds_fulins",
            Format::XetraInstruments => "xetra_instruments",
            Format::Csv => "csv",
        }
    }

    /// A name for people, saying which files the format reads.
    pub fn title(self) -> &'static str {
        match self {
            Format::GleifIsinLei => "GLEIF ISIN-to-LEI (CSV or zip)",
            Format::FirdsFulins => "ESMA FIRDS full reference data (FULINS XML or zip)",
            Format::XetraInstruments => "Xetra all tradable instruments (CSV)",
            Format::Csv => "Generic CSV (columns chosen in the options)",
        }
    }

    /// Whether its rows can carry instrument names (GLEIF's pairs never do).
    pub fn has_names(self) -> bool {
        self != Format::GleifIsinLei
    }

    /// The format called `name` (see [`Format::name`]).
    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|format| format.name() == name)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Per-source options, stored as a JSON object in `sources.options`. Every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FormatOptions {
    /// Zip member to read (exact name or a `*` glob such as `FULINS_E_*.xml`); default: the one
    /// .csv/.xml/.txt member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// csv only: one-character delimiter (default ","); "\t" or "tab" means tab.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// csv only: whether line 1 (after skip_lines) is a header (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// csv only: lines to skip before the header/data (preambles; default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_lines: Option<u32>,
    /// csv only: which column holds the ISIN — a header name, or a 1-based column number
    /// (required for csv).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isin_column: Option<String>,
    /// csv only: the column with the instrument's name (header name or 1-based number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_column: Option<String>,
    /// csv only: the column with the issuer's LEI (header name or 1-based number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lei_column: Option<String>,
    /// csv only: the column with the currency (header name or 1-based number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency_column: Option<String>,
    /// csv only: the column with the CFI code (header name or 1-based number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cfi_column: Option<String>,
}

/// The option names, in the order of [`FormatOptions`]' fields.
const OPTION_NAMES: [&str; 9] = [
    "member",
    "delimiter",
    "header",
    "skip_lines",
    "isin_column",
    "name_column",
    "lei_column",
    "currency_column",
    "cfi_column",
];

impl FormatOptions {
    /// Parses the stored JSON text ("" or "{}" = defaults). Error message names the bad key.
    pub fn from_json(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("the options are not valid JSON: {e}"))?;
        let serde_json::Value::Object(map) = value else {
            return Err("the options must be a JSON object such as {\"member\": \"*.csv\"}".to_owned());
        };
        fn field<T: serde::de::DeserializeOwned>(key: &str, value: serde_json::Value) -> Result<T, String> {
            serde_json::from_value(value).map_err(|e| format!("option `{key}`: {e}"))
        }
        let mut options = Self::default();
        // Key by key rather than one derived deserialisation, so that a wrongly typed value is
        // reported with the name of its key.
        for (key, value) in map {
            match key.as_str() {
                "member" => options.member = field(&key, value)?,
                "delimiter" => options.delimiter = field(&key, value)?,
                "header" => options.header = field(&key, value)?,
                "skip_lines" => options.skip_lines = field(&key, value)?,
                "isin_column" => options.isin_column = field(&key, value)?,
                "name_column" => options.name_column = field(&key, value)?,
                "lei_column" => options.lei_column = field(&key, value)?,
                "currency_column" => options.currency_column = field(&key, value)?,
                "cfi_column" => options.cfi_column = field(&key, value)?,
                _ => {
                    return Err(format!(
                        "unknown option `{key}`; the options are {}",
                        OPTION_NAMES.join(", ")
                    ));
                }
            }
        }
        Ok(options)
    }

    /// The options as compact JSON, without the fields that are not set.
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings, numbers and booleans cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Checks the options against a format; each problem as (option name, message for people).
    pub fn check(&self, format: Format) -> Result<(), Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        if self.member.as_deref() == Some("") {
            problems
                .push(("member", "the zip member name is empty; leave the option out instead".to_owned()));
        }
        let csv_only: [(&'static str, bool); 8] = [
            ("delimiter", self.delimiter.is_some()),
            ("header", self.header.is_some()),
            ("skip_lines", self.skip_lines.is_some()),
            ("isin_column", self.isin_column.is_some()),
            ("name_column", self.name_column.is_some()),
            ("lei_column", self.lei_column.is_some()),
            ("currency_column", self.currency_column.is_some()),
            ("cfi_column", self.cfi_column.is_some()),
        ];
        if format != Format::Csv {
            for (name, set) in csv_only {
                if set {
                    problems.push((
                        name,
                        format!("only the csv format has this option; the {format} layout is fixed"),
                    ));
                }
            }
        } else {
            if let Err(message) = self.delimiter_byte() {
                problems.push(("delimiter", message));
            }
            let header = self.header.unwrap_or(true);
            if self.isin_column.is_none() {
                problems.push((
                    "isin_column",
                    "say which column holds the ISIN: a header name, or a column number from 1".to_owned(),
                ));
            }
            for (name, column) in self.columns() {
                let Some(column) = column else { continue };
                match ColumnRef::parse(column) {
                    Err(message) => problems.push((name, message)),
                    Ok(ColumnRef::Name(_)) if !header => problems.push((
                        name,
                        format!("{column:?} is a column name, but the file has no header: use a column number from 1"),
                    )),
                    Ok(_) => {}
                }
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// The column options of the csv format, with their option names.
    fn columns(&self) -> [(&'static str, Option<&str>); 5] {
        [
            ("isin_column", self.isin_column.as_deref()),
            ("name_column", self.name_column.as_deref()),
            ("lei_column", self.lei_column.as_deref()),
            ("currency_column", self.currency_column.as_deref()),
            ("cfi_column", self.cfi_column.as_deref()),
        ]
    }

    /// The csv delimiter as one byte.
    fn delimiter_byte(&self) -> Result<u8, String> {
        let Some(delimiter) = self.delimiter.as_deref() else { return Ok(b',') };
        let byte = match delimiter {
            "\t" | "tab" | "\\t" => b'\t',
            _ => match delimiter.as_bytes() {
                [byte] if delimiter.is_ascii() => *byte,
                _ => {
                    return Err(format!(
                        "{delimiter:?} is not one ASCII character; use e.g. \",\", \";\", \"|\" or \"tab\""
                    ));
                }
            },
        };
        if matches!(byte, b'"' | b'\n' | b'\r') || byte.is_ascii_alphanumeric() {
            return Err(format!(
                "{delimiter:?} cannot separate columns; use e.g. \",\", \";\", \"|\" or \"tab\""
            ));
        }
        Ok(byte)
    }
}

/// How an option names a column: by its header name or by a 1-based number.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ColumnRef<'a> {
    Name(&'a str),
    /// 0-based index.
    Index(usize),
}

impl<'a> ColumnRef<'a> {
    fn parse(column: &'a str) -> Result<Self, String> {
        if column.is_empty() {
            return Err("the column is empty; give a header name or a column number from 1".to_owned());
        }
        if column.bytes().all(|b| b.is_ascii_digit()) {
            return match column.parse::<usize>() {
                Ok(number) if number >= 1 => Ok(ColumnRef::Index(number - 1)),
                _ => Err(format!("{column} is not a column number; columns are numbered from 1")),
            };
        }
        Ok(ColumnRef::Name(column))
    }
}

/// One listing line of an instrument (FIRDS: one per venue; Xetra: one per currency line).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listing {
    /// The venue's MIC.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub venue: Option<String>,
    /// The trading currency.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub currency: Option<String>,
    /// The ticker (Xetra's Mnemonic).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ticker: Option<String>,
    /// The first trading day as given (FIRDS FrstTradDt's date part, Xetra First Trading Date).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub first_trading: Option<String>,
    /// The termination date (FIRDS TermntnDt's date part).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub termination: Option<String>,
}

/// A parsed, valid row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based physical line (XML: the RefData's ordinal, 1-based).
    pub line: u64,
    pub isin: Isin,
    /// The issuer's LEI (GLEIF: always; FIRDS `Issr`; csv `lei_column`).
    pub lei: Option<Lei>,
    /// The instrument's name (FIRDS `FullNm`, Xetra `Instrument`, csv `name_column`).
    pub name: Option<String>,
    /// The CFI code (FIRDS `ClssfctnTp`, csv `cfi_column`).
    pub cfi: Option<String>,
    /// The currency (FIRDS `NtnlCcy`, Xetra `Currency`, csv `currency_column`).
    pub currency: Option<String>,
    /// Where and how the instrument trades (FIRDS and Xetra only).
    pub listing: Option<Listing>,
}

impl Row {
    /// The de-duplication key within one file besides the ISIN: FIRDS the venue, Xetra the
    /// currency, else "".
    ///
    /// Only Xetra listings carry a currency (one line per trading currency, all on the same MIC),
    /// and FIRDS listings only a venue, so the listing's currency wins over its venue.
    pub fn listing_key(&self) -> &str {
        match &self.listing {
            Some(Listing { currency: Some(currency), .. }) => currency,
            Some(Listing { venue: Some(venue), .. }) => venue,
            _ => "",
        }
    }
}

/// A line that could not be used, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// 1-based physical line (XML: the RefData's ordinal, 1-based).
    pub line: u64,
    /// Why, for people: e.g. "ISIN: check digit: 0, expected 5".
    pub reason: String,
    /// The raw line, at most 200 characters, for people (FIRDS: the record's key fields, as the
    /// XML has no lines worth quoting; csv and Xetra: the fields joined again, without quoting).
    pub raw: String,
}

/// The longest `Rejected::raw`, in characters.
const RAW_MAX_CHARS: usize = 200;

impl Rejected {
    /// A rejection of the raw bytes `raw` (decoded leniently and shortened for display).
    fn new(line: u64, reason: impl Into<String>, raw: &[u8]) -> Self {
        Rejected { line, reason: reason.into(), raw: shorten(&String::from_utf8_lossy(raw)) }
    }
}

/// `text` cut to [`RAW_MAX_CHARS`] characters.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(RAW_MAX_CHARS) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// Whether a line read as text (lossily) is binary data: invalid UTF-8 or control characters
/// other than tabs.
fn is_binary(text: &str) -> bool {
    text.chars().any(|c| c == char::REPLACEMENT_CHARACTER || (c.is_control() && c != '\t'))
}

/// What a reader produces for one line or record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A valid row.
    Row(Row),
    /// A line or record that cannot be used, and why.
    Rejected(Rejected),
}

/// Problems that make the whole file unusable (the import fails, nothing applied).
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The input could not be read (including a decompression failure or the size cap).
    /// (Not a `source`: the message already says the cause, and `{:#}` would say it twice.)
    #[error("reading the file failed: {0}")]
    Io(std::io::Error),
    /// The first line is not the format's header (an empty file included, for GLEIF).
    #[error("line {line}: the header is {found:?}; a {format} file starts with {expected:?}")]
    Header { line: u64, format: Format, expected: String, found: String },
    /// The first line is not text at all: a broken download, or a file of another kind.
    #[error("line {line} is binary data, not text: not a {format} file (a broken or wrong download?)")]
    NotText { line: u64, format: Format },
    /// A column the format or the options need is not in the header.
    #[error("no column {column:?} in {searched}; a {format} file needs it{}", found_columns(.found))]
    MissingColumn { format: Format, column: String, searched: String, found: Vec<String> },
    /// The file has no line at all where a header was expected (Xetra, csv with a header).
    #[error("the file is empty: a {format} file starts with a header line")]
    Empty { format: Format },
    /// The XML is malformed or cut off; `position` is the byte offset in the decompressed XML.
    #[error("the XML is not well-formed at byte {position}: {message}")]
    Xml { position: u64, message: String },
    /// The csv crate could not read a record.
    #[error("line {line}: the CSV cannot be read: {message}")]
    Csv { line: u64, message: String },
    /// A line or record longer than [`bounded::LINE_MAX_BYTES`] (see [`bounded`]).
    #[error("{0}")]
    TooLong(String),
    /// The source's options do not fit the format (see [`FormatOptions::check`]).
    #[error("the source's options do not fit the format: {0}")]
    Options(String),
}

impl From<std::io::Error> for FormatError {
    fn from(error: std::io::Error) -> Self {
        match error.get_ref().and_then(|inner| inner.downcast_ref::<bounded::LineTooLong>()) {
            Some(too_long) => Self::TooLong(too_long.0.clone()),
            None => Self::Io(error),
        }
    }
}

/// ", found: a, b, c" for an error message, shortened when there are many.
fn found_columns(found: &[String]) -> String {
    const SHOWN: usize = 12;
    if found.is_empty() {
        return String::new();
    }
    let mut text = format!(
        "; the columns are {}",
        found.iter().take(SHOWN).map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ")
    );
    if found.len() > SHOWN {
        text.push_str(&format!(" and {} more", found.len() - SHOWN));
    }
    text
}

/// Reads rows one at a time; memory never grows with the file.
pub trait RowReader {
    /// The next row or rejected line; `None` at the end of the file.
    fn next_item(&mut self) -> Result<Option<Item>, FormatError>;
}

/// A reader of `format` over `input` (already decompressed). Reads the header now, so a file of
/// the wrong layout fails here.
pub fn open_reader(
    format: Format,
    options: &FormatOptions,
    input: Box<dyn BufRead + Send>,
) -> Result<Box<dyn RowReader + Send>, FormatError> {
    if let Err(problems) = options.check(format) {
        let text = problems.iter().map(|(name, message)| format!("{name}: {message}")).collect::<Vec<_>>();
        return Err(FormatError::Options(text.join("; ")));
    }
    // Every reader reads through the line cap: XML by the text between tags (a FIRDS file is
    // often one line), the others by lines.
    let boundary = if format == Format::FirdsFulins { Boundary::Tag } else { Boundary::LineEnd };
    let input: Box<dyn BufRead + Send> =
        Box::new(std::io::BufReader::with_capacity(1 << 16, LineCapped::new(input, boundary)));
    Ok(match format {
        Format::GleifIsinLei => Box::new(gleif::GleifReader::open(input)?),
        Format::FirdsFulins => Box::new(firds::FirdsReader::new(input)),
        Format::XetraInstruments => Box::new(xetra::XetraReader::open(input)?),
        Format::Csv => Box::new(csv::CsvReader::open(options, input)?),
    })
}

/// The UTF-8 byte order mark, tolerated before a header.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `line` without its line end (`\n` or `\r\n`).
fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `Some(text)` for a non-empty field, `None` for an empty one.
fn non_empty(text: &str) -> Option<String> {
    if text.is_empty() { None } else { Some(text.to_owned()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip_and_unknown_names_are_none() {
        for format in Format::ALL {
            assert_eq!(Format::parse(format.name()), Some(format));
            assert_eq!(format.to_string(), format.name());
            assert!(!format.title().is_empty());
        }
        assert_eq!(Format::parse("GLEIF"), None);
        assert_eq!(Format::parse(""), None);
    }

    #[test]
    fn empty_options_text_means_defaults() {
        assert_eq!(FormatOptions::from_json(""), Ok(FormatOptions::default()));
        assert_eq!(FormatOptions::from_json(" {} "), Ok(FormatOptions::default()));
        assert_eq!(FormatOptions::default().to_json(), "{}");
    }

    #[test]
    fn options_survive_a_round_trip_through_json() {
        let options = FormatOptions {
            member: Some("FULINS_E_*.xml".to_owned()),
            delimiter: Some("tab".to_owned()),
            header: Some(false),
            skip_lines: Some(2),
            isin_column: Some("3".to_owned()),
            ..FormatOptions::default()
        };
        let json = options.to_json();
        assert_eq!(
            json,
            r#"{"member":"FULINS_E_*.xml","delimiter":"tab","header":false,"skip_lines":2,"isin_column":"3"}"#
        );
        assert_eq!(FormatOptions::from_json(&json), Ok(options));
    }

    #[test]
    fn an_unknown_option_is_named() {
        let error = FormatOptions::from_json(r#"{"member": "a.csv", "delimeter": ";"}"#).unwrap_err();
        assert!(error.contains("`delimeter`"), "{error}");
    }

    #[test]
    fn a_wrongly_typed_option_is_named() {
        let error = FormatOptions::from_json(r#"{"header": "yes"}"#).unwrap_err();
        assert!(error.starts_with("option `header`"), "{error}");
        let error = FormatOptions::from_json(r#"{"skip_lines": -1}"#).unwrap_err();
        assert!(error.starts_with("option `skip_lines`"), "{error}");
        assert!(FormatOptions::from_json("[1]").is_err());
        assert!(FormatOptions::from_json("{").is_err());
    }

    #[test]
    fn null_means_not_set() {
        assert_eq!(FormatOptions::from_json(r#"{"member": null}"#), Ok(FormatOptions::default()));
    }

    #[test]
    fn csv_needs_an_isin_column() {
        let problems = FormatOptions::default().check(Format::Csv).unwrap_err();
        assert_eq!(problems.iter().map(|p| p.0).collect::<Vec<_>>(), ["isin_column"]);
        let options = FormatOptions { isin_column: Some("ISIN".to_owned()), ..FormatOptions::default() };
        assert_eq!(options.check(Format::Csv), Ok(()));
    }

    #[test]
    fn csv_options_are_refused_for_fixed_layouts() {
        let options = FormatOptions {
            member: Some("*.csv".to_owned()),
            delimiter: Some(";".to_owned()),
            isin_column: Some("ISIN".to_owned()),
            ..FormatOptions::default()
        };
        let problems = options.check(Format::GleifIsinLei).unwrap_err();
        assert_eq!(problems.iter().map(|p| p.0).collect::<Vec<_>>(), ["delimiter", "isin_column"]);
        let member_only = FormatOptions { member: Some("*.xml".to_owned()), ..FormatOptions::default() };
        for format in [Format::GleifIsinLei, Format::FirdsFulins, Format::XetraInstruments] {
            assert_eq!(member_only.check(format), Ok(()));
        }
    }

    #[test]
    fn bad_csv_options_are_each_reported() {
        let options = FormatOptions {
            delimiter: Some(";;".to_owned()),
            header: Some(false),
            isin_column: Some("ISIN".to_owned()),
            lei_column: Some("0".to_owned()),
            name_column: Some(String::new()),
            ..FormatOptions::default()
        };
        let problems = options.check(Format::Csv).unwrap_err();
        let names: Vec<_> = problems.iter().map(|p| p.0).collect();
        assert_eq!(names, ["delimiter", "isin_column", "name_column", "lei_column"], "{problems:?}");
    }

    #[test]
    fn tab_can_be_written_three_ways() {
        for delimiter in ["\t", "tab", "\\t"] {
            let options = FormatOptions { delimiter: Some(delimiter.to_owned()), ..FormatOptions::default() };
            assert_eq!(options.delimiter_byte(), Ok(b'\t'));
        }
        let options = FormatOptions { delimiter: Some("\"".to_owned()), ..FormatOptions::default() };
        assert!(options.delimiter_byte().is_err());
    }

    #[test]
    fn the_listing_key_is_the_currency_else_the_venue() {
        let isin = Isin::parse("US0378331005").unwrap();
        let mut row = Row { line: 1, isin, lei: None, name: None, cfi: None, currency: None, listing: None };
        assert_eq!(row.listing_key(), "");
        row.listing = Some(Listing { currency: Some("EUR".to_owned()), ..Listing::default() });
        assert_eq!(row.listing_key(), "EUR");
        row.listing = Some(Listing {
            venue: Some("XETR".to_owned()),
            currency: Some("USD".to_owned()),
            ..Listing::default()
        });
        assert_eq!(row.listing_key(), "USD");
        row.listing = Some(Listing { venue: Some("XMAD".to_owned()), ..Listing::default() });
        assert_eq!(row.listing_key(), "XMAD");
    }

    #[test]
    fn raw_text_is_cut_to_200_characters() {
        let long = "é".repeat(300);
        let rejected = Rejected::new(1, "x", long.as_bytes());
        assert_eq!(rejected.raw.chars().count(), 200);
        assert_eq!(Rejected::new(1, "x", b"\xFFab").raw, "\u{FFFD}ab");
    }

    #[test]
    fn open_reader_refuses_options_that_do_not_fit() {
        let input: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(b"LEI,ISIN\n".to_vec()));
        let options = FormatOptions { delimiter: Some(";".to_owned()), ..FormatOptions::default() };
        let error = open_reader(Format::GleifIsinLei, &options, input).err().unwrap();
        assert!(matches!(error, FormatError::Options(_)), "{error}");
    }
}
