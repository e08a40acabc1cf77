//! A generic delimited file whose columns the source's options name, and the record reading it
//! shares with the Xetra reader: the csv crate for quoting, plus the physical line of each record.

use std::io::{self, BufRead, Read};

use super::bounded::{LINE_MAX_BYTES, LineTooLong};
use super::{ColumnRef, Format, FormatError, FormatOptions, Item, Rejected, Row, RowReader, non_empty};
use crate::domain::{Isin, Lei};

/// One field of the current record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field<'a> {
    Text(&'a str),
    /// The record is shorter than the column.
    Missing,
    NotUtf8,
}

/// The input of the csv reader, noting when it has run dry (a record read after that was ended
/// by the end of the file rather than by a line end, which its physical line depends on), and
/// failing when one record grows past the cap: quoted newlines let a record span lines, so an
/// unterminated quote would otherwise read the rest of the file into one record.
struct Watched {
    input: Box<dyn BufRead + Send>,
    at_end: bool,
    /// Bytes handed to the csv reader.
    handed: u64,
    /// Where the current record starts (bytes, and its physical line).
    record_start: u64,
    record_line: u64,
}

/// What the csv reader may hold beyond the record it is reading (its buffer, 8 KiB by default).
const CSV_BUFFER_SLACK: u64 = 16 * 1024;

impl Read for Watched {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.input.read(buffer)?;
        if read == 0 && !buffer.is_empty() {
            self.at_end = true;
        }
        self.handed += read as u64;
        if self.handed - self.record_start > LINE_MAX_BYTES as u64 + CSV_BUFFER_SLACK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                LineTooLong(format!(
                    "the record that starts on line {} is longer than {} KiB: a closing quote is probably missing",
                    self.record_line,
                    LINE_MAX_BYTES / 1024
                )),
            ));
        }
        Ok(read)
    }
}

/// The records of a delimited file, one at a time, each with its physical line.
pub(super) struct ByteRecords {
    reader: ::csv::Reader<Watched>,
    record: ::csv::ByteRecord,
    /// Lines skipped before the csv reader started.
    skipped: u64,
    /// The 1-based physical line where the current record starts; 0 before the first.
    line: u64,
}

impl ByteRecords {
    /// Skips `skip_lines` lines of `input`, then reads records separated by `delimiter`.
    pub(super) fn new(
        mut input: Box<dyn BufRead + Send>,
        delimiter: u8,
        skip_lines: u32,
    ) -> Result<Self, FormatError> {
        let mut skipped = 0;
        let mut line = Vec::new();
        while skipped < u64::from(skip_lines) {
            line.clear();
            if input.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            skipped += 1;
        }
        let reader = ::csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            // Only LF ends a record, so that the reader always consumes a record's line end
            // with the record; a CR before it is taken off the last field below.
            .terminator(::csv::Terminator::Any(b'\n'))
            .from_reader(Watched {
                input,
                at_end: false,
                handed: 0,
                record_start: 0,
                record_line: skipped + 1,
            });
        Ok(ByteRecords { reader, record: ::csv::ByteRecord::new(), skipped, line: 0 })
    }

    /// Moves to the next record that is not a blank line; false at the end of the input.
    pub(super) fn advance(&mut self) -> Result<bool, FormatError> {
        loop {
            let before = self.reader.position().line();
            let read = self.reader.read_byte_record(&mut self.record).map_err(|error| {
                let line = self.skipped + error.position().map_or(before, ::csv::Position::line);
                let message = error.to_string();
                match error.into_kind() {
                    ::csv::ErrorKind::Io(error) => FormatError::from(error),
                    _ => FormatError::Csv { line, message },
                }
            })?;
            if !read {
                return Ok(false);
            }
            let next = self.reader.position().clone();
            let watched = self.reader.get_mut();
            watched.record_start = next.byte();
            watched.record_line = self.skipped + next.line();
            // The csv line count after the record, less the line ends inside it (quoted
            // newlines, and the LF that ended it unless the end of the file did).
            let after = self.reader.position().line();
            let inner: u64 =
                self.record.iter().map(|f| f.iter().filter(|&&b| b == b'\n').count() as u64).sum();
            let ended_by_lf = !self.reader.get_ref().at_end;
            self.line = (self.skipped + after).saturating_sub(inner + u64::from(ended_by_lf));
            self.strip_carriage_return();
            if self.record.len() == 1 && self.record.get(0).is_some_and(<[u8]>::is_empty) {
                continue;
            }
            return Ok(true);
        }
    }

    /// Takes a CR (of a CRLF line end) off the last field.
    fn strip_carriage_return(&mut self) {
        let Some(last) = self.record.get(self.record.len().wrapping_sub(1)) else { return };
        if last.ends_with(b"\r") {
            let mut fields: Vec<Vec<u8>> = self.record.iter().map(<[u8]>::to_vec).collect();
            if let Some(last) = fields.last_mut() {
                last.pop();
            }
            self.record = ::csv::ByteRecord::from(fields);
        }
    }

    /// The physical line where the current record starts.
    pub(super) fn line(&self) -> u64 {
        self.line
    }

    /// How many fields the current record has.
    pub(super) fn record_len(&self) -> usize {
        self.record.len()
    }

    /// The field at 0-based `index` of the current record.
    pub(super) fn field(&self, index: usize) -> Field<'_> {
        match self.record.get(index) {
            None => Field::Missing,
            Some(bytes) => std::str::from_utf8(bytes).map_or(Field::NotUtf8, Field::Text),
        }
    }

    /// Every field of the current record as text (for a header).
    pub(super) fn fields(&self) -> Vec<String> {
        self.record.iter().map(|field| String::from_utf8_lossy(field).into_owned()).collect()
    }

    /// The current record as the item a reader hands on: `parsed` (what the format made of the
    /// record) as a row, or, where the format refused it, a rejection quoting the record joined
    /// again with `delimiter`. Shared by the csv and Xetra readers.
    pub(super) fn item(&self, parsed: Result<Row, String>, delimiter: u8) -> Item {
        match parsed {
            Ok(row) => Item::Row(row),
            Err(reason) => Item::Rejected(Rejected::new(self.line, reason, &self.raw(delimiter))),
        }
    }

    /// The current record joined again with `delimiter` (for people; quoting is not restored).
    pub(super) fn raw(&self, delimiter: u8) -> Vec<u8> {
        let mut raw = Vec::new();
        for (index, field) in self.record.iter().enumerate() {
            if index > 0 {
                raw.push(delimiter);
            }
            raw.extend_from_slice(field);
            // Enough for the 200 characters a rejection keeps.
            if raw.len() > 1000 {
                break;
            }
        }
        raw
    }
}

/// The columns a csv source reads, as 0-based indexes.
struct Columns {
    isin: usize,
    name: Option<usize>,
    lei: Option<usize>,
    currency: Option<usize>,
    cfi: Option<usize>,
}

/// Reads a delimited file with the columns named in the source's options.
pub(super) struct CsvReader {
    records: ByteRecords,
    delimiter: u8,
    columns: Columns,
}

impl CsvReader {
    /// Skips the preamble, reads the header if there is one, and finds the columns.
    pub(super) fn open(options: &FormatOptions, input: Box<dyn BufRead + Send>) -> Result<Self, FormatError> {
        let delimiter = options.delimiter_byte().map_err(FormatError::Options)?;
        let skip_lines = options.skip_lines.unwrap_or(0);
        let mut records = ByteRecords::new(input, delimiter, skip_lines)?;
        let header = if options.header.unwrap_or(true) {
            if !records.advance()? {
                return Err(FormatError::Empty { format: Format::Csv });
            }
            Some((records.line(), records.fields()))
        } else {
            None
        };
        let find = |option: &'static str, column: Option<&str>| -> Result<Option<usize>, FormatError> {
            let Some(column) = column else { return Ok(None) };
            let reference =
                ColumnRef::parse(column).map_err(|e| FormatError::Options(format!("{option}: {e}")))?;
            let index = match (&reference, &header) {
                (ColumnRef::Name(name), Some((_, names))) => names.iter().position(|found| found == name),
                (ColumnRef::Index(index), Some((_, names))) => {
                    Some(*index).filter(|index| *index < names.len())
                }
                (ColumnRef::Index(index), None) => Some(*index),
                (ColumnRef::Name(_), None) => {
                    return Err(FormatError::Options(format!(
                        "{option}: {column:?} is a column name, but the file has no header"
                    )));
                }
            };
            match (index, &header) {
                (Some(index), _) => Ok(Some(index)),
                (None, Some((line, names))) => Err(FormatError::MissingColumn {
                    format: Format::Csv,
                    column: column.to_owned(),
                    searched: format!("the header on line {line}"),
                    found: names.clone(),
                }),
                (None, None) => Ok(None),
            }
        };
        let Some(isin) = find("isin_column", options.isin_column.as_deref())? else {
            return Err(FormatError::Options("isin_column: say which column holds the ISIN".to_owned()));
        };
        let columns = Columns {
            isin,
            name: find("name_column", options.name_column.as_deref())?,
            lei: find("lei_column", options.lei_column.as_deref())?,
            currency: find("currency_column", options.currency_column.as_deref())?,
            cfi: find("cfi_column", options.cfi_column.as_deref())?,
        };
        Ok(CsvReader { records, delimiter, columns })
    }

    /// The row of the current record, or why it cannot be used.
    fn row(&self) -> Result<Row, String> {
        let records = &self.records;
        let isin = match records.field(self.columns.isin) {
            Field::Text(isin) => Isin::parse(isin).map_err(|e| format!("ISIN: {e}"))?,
            Field::Missing => {
                let fields = records.record_len();
                let noun = if fields == 1 { "field" } else { "fields" };
                return Err(format!("{fields} {noun}, but the ISIN is in column {}", self.columns.isin + 1));
            }
            Field::NotUtf8 => return Err("ISIN: not valid UTF-8".to_owned()),
        };
        let text = |column: Option<usize>, what: &str| -> Result<Option<String>, String> {
            match column.map(|column| records.field(column)) {
                None | Some(Field::Missing) => Ok(None),
                Some(Field::Text(text)) => Ok(non_empty(text)),
                Some(Field::NotUtf8) => Err(format!("{what}: not valid UTF-8")),
            }
        };
        let lei = match text(self.columns.lei, "LEI")? {
            Some(lei) => Some(Lei::parse(&lei).map_err(|e| format!("LEI: {e}"))?),
            None => None,
        };
        Ok(Row {
            line: records.line(),
            isin,
            lei,
            name: text(self.columns.name, "name")?,
            cfi: text(self.columns.cfi, "CFI")?,
            currency: text(self.columns.currency, "currency")?,
            listing: None,
        })
    }
}

impl RowReader for CsvReader {
    fn next_item(&mut self) -> Result<Option<Item>, FormatError> {
        if !self.records.advance()? {
            return Ok(None);
        }
        Ok(Some(self.records.item(self.row(), self.delimiter)))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::sources::formats::open_reader;

    fn options(json: &str) -> FormatOptions {
        FormatOptions::from_json(json).unwrap()
    }

    fn read_all(options: &FormatOptions, text: &[u8]) -> Result<Vec<Item>, FormatError> {
        let input: Box<dyn BufRead + Send> = Box::new(Cursor::new(text.to_vec()));
        let mut reader = open_reader(Format::Csv, options, input)?;
        let mut items = Vec::new();
        while let Some(item) = reader.next_item()? {
            items.push(item);
        }
        Ok(items)
    }

    /// (line, ISIN or rejection reason) of each item.
    fn summary(items: &[Item]) -> Vec<(u64, String)> {
        items
            .iter()
            .map(|item| match item {
                Item::Row(row) => (row.line, row.isin.to_string()),
                Item::Rejected(rejected) => (rejected.line, rejected.reason.clone()),
            })
            .collect()
    }

    #[test]
    fn columns_are_found_by_header_name() {
        let items = read_all(
            &options(r#"{"isin_column": "Isin", "name_column": "Name", "lei_column": "LEI", "cfi_column": "CFI", "currency_column": "Ccy"}"#),
            b"Name,Isin,Ccy,LEI,CFI\n\"Apple, Inc.\",US0378331005,USD,HWUPKR0MPOU8FGXBT394,ESVUFR\nBayer,DE000BAY0017,,,\n",
        )
        .unwrap();
        let [Item::Row(apple), Item::Row(bayer)] = items.as_slice() else { panic!("{items:?}") };
        assert_eq!(apple.line, 2);
        assert_eq!(apple.name.as_deref(), Some("Apple, Inc."));
        assert_eq!(apple.lei.map(|lei| lei.to_string()).as_deref(), Some("HWUPKR0MPOU8FGXBT394"));
        assert_eq!((apple.cfi.as_deref(), apple.currency.as_deref()), (Some("ESVUFR"), Some("USD")));
        assert_eq!(apple.listing_key(), "");
        assert_eq!(
            (bayer.line, bayer.lei, bayer.currency.as_deref(), bayer.cfi.as_deref()),
            (3, None, None, None)
        );
    }

    #[test]
    fn columns_are_found_by_number_without_a_header() {
        let items = read_all(
            &options(r#"{"isin_column": "2", "name_column": "1", "header": false, "delimiter": "tab"}"#),
            b"Apple\tUS0378331005\nBayer\tDE000BAY0017\textra\n",
        )
        .unwrap();
        assert_eq!(summary(&items), [(1, "US0378331005".to_owned()), (2, "DE000BAY0017".to_owned())]);
    }

    #[test]
    fn preamble_lines_are_skipped_and_lines_stay_physical() {
        let items = read_all(
            &options(r#"{"isin_column": "ISIN", "skip_lines": 2, "delimiter": ";"}"#),
            b"\"European Equities\"\n\"24 Sep 2026\"\nName;ISIN\nA;US0378331005\n\nB;\"DE000BAY0017\"\n\"Multi\nline\";US0378331004\nC;GB00B03MLX29",
        )
        .unwrap();
        assert_eq!(
            summary(&items),
            [
                (4, "US0378331005".to_owned()),
                (6, "DE000BAY0017".to_owned()),
                (7, "ISIN: check digit: 4, expected 5".to_owned()),
                (9, "GB00B03MLX29".to_owned()),
            ]
        );
    }

    #[test]
    fn crlf_line_ends_and_a_bom_are_fine() {
        let items = read_all(
            &options(r#"{"isin_column": "ISIN", "name_column": "Name"}"#),
            b"\xEF\xBB\xBFISIN,Name\r\nUS0378331005,Apple\r\n\r\nDE000BAY0017,\"Bayer\"\r\n",
        )
        .unwrap();
        assert_eq!(summary(&items), [(2, "US0378331005".to_owned()), (4, "DE000BAY0017".to_owned())]);
        let Item::Row(bayer) = &items[1] else { panic!() };
        assert_eq!(bayer.name.as_deref(), Some("Bayer"));
    }

    #[test]
    fn bad_rows_are_rejected_with_their_reason() {
        let items = read_all(
            &options(r#"{"isin_column": "ISIN", "lei_column": "LEI"}"#),
            b"Name,LEI,ISIN\nA,,us0378331005\nB,5493001KJTIIGC8Y1R13,US0378331005\nshort\nC,HWUPKR0MPOU8FGXBT394,US0378331005\n",
        )
        .unwrap();
        assert_eq!(
            summary(&items),
            [
                (2, "ISIN: character: 'u' at position 1 is not an ASCII letter A-Z".to_owned()),
                (3, "LEI: check digits: 13, expected 12".to_owned()),
                (4, "1 field, but the ISIN is in column 3".to_owned()),
                (5, "US0378331005".to_owned()),
            ]
        );
        let Item::Rejected(rejected) = &items[1] else { panic!() };
        assert_eq!(rejected.raw, "B,5493001KJTIIGC8Y1R13,US0378331005");
    }

    #[test]
    fn a_named_column_that_the_header_lacks_fails_the_file() {
        let error =
            read_all(&options(r#"{"isin_column": "ISIN"}"#), b"Name,Isin\nA,US0378331005\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "no column \"ISIN\" in the header on line 1; a csv file needs it; the columns are \"Name\", \"Isin\""
        );
        let error = read_all(&options(r#"{"isin_column": "3"}"#), b"Name,Isin\n").unwrap_err();
        assert!(matches!(error, FormatError::MissingColumn { .. }), "{error}");
    }

    #[test]
    fn an_empty_file_has_no_header() {
        let error = read_all(&options(r#"{"isin_column": "ISIN"}"#), b"").unwrap_err();
        assert!(matches!(error, FormatError::Empty { format: Format::Csv }), "{error}");
        assert_eq!(read_all(&options(r#"{"isin_column": "1", "header": false}"#), b"").unwrap(), []);
    }

    #[test]
    fn a_file_that_does_not_fit_the_options_fails() {
        let error = read_all(&FormatOptions::default(), b"ISIN\n").unwrap_err();
        assert!(matches!(error, FormatError::Options(_)), "{error}");
    }
}
