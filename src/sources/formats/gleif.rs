//! The GLEIF ISIN-to-LEI relationship file: a header `LEI,ISIN`, then one `LEI,ISIN` pair per
//! line, about ten million of them.
//!
//! Read by hand rather than with the csv crate: both fields are `[A-Z0-9]`, so there is no quoting
//! to honour, and one reused line buffer with no allocation per good row keeps the reader well
//! above five million rows a second.

use std::io::BufRead;

use super::{BOM, Format, FormatError, Item, Rejected, Row, RowReader, shorten, strip_line_end};
use crate::domain::{Isin, Lei};

/// The only header a GLEIF file may have.
const HEADER: &[u8] = b"LEI,ISIN";

/// Reads a GLEIF ISIN-to-LEI file line by line.
pub(super) struct GleifReader {
    input: Box<dyn BufRead + Send>,
    /// The current line, reused for every line.
    buffer: Vec<u8>,
    /// The 1-based number of the line in `buffer`.
    line: u64,
    /// The LEI of the previous good row: the file is sorted by LEI, so most rows repeat it and
    /// need no second check.
    last_lei: Option<Lei>,
}

impl GleifReader {
    /// Reads and checks the header line.
    pub(super) fn open(mut input: Box<dyn BufRead + Send>) -> Result<Self, FormatError> {
        let mut buffer = Vec::with_capacity(256);
        input.read_until(b'\n', &mut buffer)?;
        let first = strip_line_end(&buffer);
        let header = first.strip_prefix(BOM).unwrap_or(first);
        if header != HEADER {
            if super::is_binary(&String::from_utf8_lossy(header)) {
                return Err(FormatError::NotText { line: 1, format: Format::GleifIsinLei });
            }
            return Err(FormatError::Header {
                line: 1,
                format: Format::GleifIsinLei,
                expected: String::from_utf8_lossy(HEADER).into_owned(),
                found: shorten(&String::from_utf8_lossy(header)),
            });
        }
        Ok(GleifReader { input, buffer, line: 1, last_lei: None })
    }
}

impl RowReader for GleifReader {
    fn next_item(&mut self) -> Result<Option<Item>, FormatError> {
        self.buffer.clear();
        if self.input.read_until(b'\n', &mut self.buffer)? == 0 {
            return Ok(None);
        }
        self.line += 1;
        let line = strip_line_end(&self.buffer);
        Ok(Some(match parse_line(line, &mut self.last_lei) {
            Ok((isin, lei)) => Item::Row(Row {
                line: self.line,
                isin,
                lei: Some(lei),
                name: None,
                cfi: None,
                currency: None,
                listing: None,
            }),
            Err(reason) => Item::Rejected(Rejected::new(self.line, reason, line)),
        }))
    }
}

/// The ISIN and LEI of one data line (without its line end), or why the line cannot be used.
fn parse_line(line: &[u8], last_lei: &mut Option<Lei>) -> Result<(Isin, Lei), String> {
    if line.is_empty() {
        return Err("blank line".to_owned());
    }
    let text = std::str::from_utf8(line).map_err(|e| {
        format!("not valid UTF-8: byte {} of the line cannot be decoded", e.valid_up_to() + 1)
    })?;
    let Some((lei, isin)) = text.split_once(',') else {
        return Err("1 field, expected 2".to_owned());
    };
    if isin.contains(',') {
        let fields = text.bytes().filter(|&b| b == b',').count() + 1;
        return Err(format!("{fields} fields, expected 2"));
    }
    let isin = Isin::parse(isin).map_err(|e| format!("ISIN: {e}"))?;
    if lei.is_empty() {
        return Err("LEI: empty".to_owned());
    }
    let lei = match last_lei {
        Some(last) if last.as_str() == lei => *last,
        _ => {
            let parsed = Lei::parse(lei).map_err(|e| format!("LEI: {e}"))?;
            *last_lei = Some(parsed);
            parsed
        }
    };
    Ok((isin, lei))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use proptest::prelude::*;

    use super::*;
    use crate::sources::formats::{FormatOptions, open_reader};

    /// Every item of `bytes` read as a GLEIF file.
    fn read_all(bytes: &[u8]) -> Result<Vec<Item>, FormatError> {
        let input: Box<dyn BufRead + Send> = Box::new(Cursor::new(bytes.to_vec()));
        let mut reader = open_reader(Format::GleifIsinLei, &FormatOptions::default(), input)?;
        let mut items = Vec::new();
        while let Some(item) = reader.next_item()? {
            items.push(item);
        }
        Ok(items)
    }

    fn rejections(items: &[Item]) -> Vec<(u64, &str)> {
        items
            .iter()
            .filter_map(|item| match item {
                Item::Rejected(r) => Some((r.line, r.reason.as_str())),
                Item::Row(_) => None,
            })
            .collect()
    }

    fn rows(items: &[Item]) -> Vec<(u64, &str, &str)> {
        items
            .iter()
            .filter_map(|item| match item {
                Item::Row(row) => {
                    Some((row.line, row.isin.as_str(), row.lei.as_ref().map_or("", |lei| lei.as_str())))
                }
                Item::Rejected(_) => None,
            })
            .collect()
    }

    #[test]
    fn good_rows_carry_their_line_isin_and_lei() {
        let items =
            read_all(b"LEI,ISIN\n5493001KJTIIGC8Y1R12,US0378331005\n5493001KJTIIGC8Y1R12,DE000BAY0017\n")
                .unwrap();
        assert_eq!(
            rows(&items),
            [(2, "US0378331005", "5493001KJTIIGC8Y1R12"), (3, "DE000BAY0017", "5493001KJTIIGC8Y1R12")]
        );
    }

    #[test]
    fn a_bom_crlf_line_ends_and_a_missing_final_newline_are_fine() {
        let items = read_all(
            b"\xEF\xBB\xBFLEI,ISIN\r\n5493001KJTIIGC8Y1R12,US0378331005\r\nHWUPKR0MPOU8FGXBT394,DE000BAY0017",
        )
        .unwrap();
        assert_eq!(
            rows(&items),
            [(2, "US0378331005", "5493001KJTIIGC8Y1R12"), (3, "DE000BAY0017", "HWUPKR0MPOU8FGXBT394")]
        );
    }

    #[test]
    fn a_wrong_or_missing_header_fails_the_file() {
        for (bytes, found) in [
            (&b"ISIN,LEI\n5493001KJTIIGC8Y1R12,US0378331005\n"[..], "ISIN,LEI"),
            (&b"5493001KJTIIGC8Y1R12,US0378331005\n"[..], "5493001KJTIIGC8Y1R12,US0378331005"),
            (&b"LEI;ISIN\n"[..], "LEI;ISIN"),
            (&b"lei,isin\n"[..], "lei,isin"),
            (&b"LEI,ISIN,STATUS\n"[..], "LEI,ISIN,STATUS"),
            (&b""[..], ""),
        ] {
            match read_all(bytes) {
                Err(FormatError::Header {
                    line: 1,
                    format: Format::GleifIsinLei,
                    expected,
                    found: actual,
                }) => {
                    assert_eq!(expected, "LEI,ISIN");
                    assert_eq!(actual, found);
                }
                other => panic!("{found:?}: {other:?}"),
            }
        }
        let message = read_all(b"ISIN,LEI\n").unwrap_err().to_string();
        assert_eq!(
            message,
            r#"line 1: the header is "ISIN,LEI"; a gleif_isin_lei file starts with "LEI,ISIN""#
        );
    }

    #[test]
    fn binary_data_is_named_as_such_not_quoted() {
        let message = read_all(b"PK\x03\x04\x14\x00\x08\x00\xff\xfe garbage\n").unwrap_err().to_string();
        assert_eq!(
            message,
            "line 1 is binary data, not text: not a gleif_isin_lei file (a broken or wrong download?)"
        );
    }

    #[test]
    fn a_header_alone_is_an_empty_list() {
        assert_eq!(read_all(b"LEI,ISIN\n").unwrap(), []);
        assert_eq!(read_all(b"LEI,ISIN").unwrap(), []);
    }

    #[test]
    fn each_bad_line_is_rejected_with_its_reason() {
        let file = "LEI,ISIN\n\
            894500IM2NROJOK8TR67,DE000A3RPWF7,ACTIVE\n\
            222100KGMN1FI3WWK713,US75031-D995\n\
            ,US64158CX874\n\
            \n\
            984500LJH0TJL5RUE827,DE000A0VWUW00\n\
            549300CMZ88DIGSPT497,US19288TGX19\n\
            969500BHA7R54ET2JT54,US78727PEJ70\n\
            894500NJTVWZ02B5SH86,ZZ25473R5013\n\
            DE000UB92QE6\n\
            724500ME6NI244DT8J35,\n\
            959800QFBL0EG9QH3Y38, US59438DHR35 \n\
            213800F7ZUAWGH4HE792,D\u{415}0009073411\n\
            5493001KJTIIGC8Y1R12,US0378331005\r\r\n";
        let items = read_all(file.as_bytes()).unwrap();
        assert_eq!(
            rejections(&items),
            [
                (2, "3 fields, expected 2"),
                (3, "ISIN: character: '-' at position 8 is not an ASCII letter A-Z or digit 0-9"),
                (4, "LEI: empty"),
                (5, "blank line"),
                (6, "ISIN: length: 13 characters, an ISIN has 12"),
                (7, "LEI: check digits: 97, expected 86"),
                (8, "ISIN: check digit: 0, expected 5"),
                (9, "ISIN: prefix: \"ZZ\" is not an ISO 3166-1 country code or a known ISIN prefix"),
                (10, "1 field, expected 2"),
                (11, "ISIN: length: 0 characters, an ISIN has 12"),
                (12, "ISIN: length: 14 characters, an ISIN has 12"),
                (13, "ISIN: character: '\u{415}' at position 2 is not an ASCII letter A-Z"),
                (14, "ISIN: length: 13 characters, an ISIN has 12"),
            ]
        );
        assert!(rows(&items).is_empty());
    }

    #[test]
    fn a_rejection_keeps_the_raw_line_without_its_line_end() {
        let items = read_all(b"LEI,ISIN\r\n,US64158CX874\r\n").unwrap();
        assert_eq!(
            items,
            [Item::Rejected(Rejected {
                line: 2,
                reason: "LEI: empty".to_owned(),
                raw: ",US64158CX874".to_owned()
            })]
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_reject_only_their_line() {
        let items =
            read_all(b"LEI,ISIN\n5493001KJTIIGC8Y1R12,US03783\xFF1005\n5493001KJTIIGC8Y1R12,US0378331005\n")
                .unwrap();
        assert_eq!(rejections(&items), [(2, "not valid UTF-8: byte 29 of the line cannot be decoded")]);
        assert_eq!(rows(&items), [(3, "US0378331005", "5493001KJTIIGC8Y1R12")]);
    }

    #[test]
    fn duplicates_are_rows_for_the_import_to_judge() {
        let items =
            read_all(b"LEI,ISIN\n5493001KJTIIGC8Y1R12,US0378331005\nHWUPKR0MPOU8FGXBT394,US0378331005\n")
                .unwrap();
        assert_eq!(rows(&items).len(), 2);
    }

    #[test]
    fn a_bad_lei_after_a_good_one_is_still_refused() {
        let items = read_all(
            b"LEI,ISIN\n5493001KJTIIGC8Y1R12,US0378331005\n5493001KJTIIGC8Y1R13,DE000BAY0017\n5493001KJTIIGC8Y1R12,DE000BAY0017\n",
        )
        .unwrap();
        assert_eq!(rejections(&items), [(3, "LEI: check digits: 13, expected 12")]);
        assert_eq!(rows(&items).len(), 2);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_every_line_is_accounted_for(
            body in proptest::collection::vec(
                prop_oneof![
                    Just(b'\n'), Just(b','), Just(b'\r'), any::<u8>(), b'A'..=b'Z', b'0'..=b'9'
                ],
                0..400,
            ),
            with_header in any::<bool>(),
        ) {
            let mut bytes = if with_header { b"LEI,ISIN\n".to_vec() } else { Vec::new() };
            bytes.extend_from_slice(&body);
            if let Ok(items) = read_all(&bytes) {
                let data = &bytes[bytes.iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| i + 1)..];
                let lines = data.split(|&b| b == b'\n').count() - usize::from(data.is_empty() || data.ends_with(b"\n"));
                prop_assert_eq!(items.len(), lines);
                for (index, item) in items.iter().enumerate() {
                    let line = match item { Item::Row(row) => row.line, Item::Rejected(r) => r.line };
                    prop_assert_eq!(line, index as u64 + 2);
                }
            }
        }
    }
}
