//! Deutsche Börse's "All tradable instruments" file for Xetra: `;`-separated UTF-8, a short
//! preamble (`Market:;XETR`, `Date Last Update:;…`), then a header of about 150 columns, which
//! are found by name because their positions change between versions.

use std::io::BufRead;

use super::csv::{ByteRecords, Field};
use super::{Format, FormatError, Item, Listing, Row, RowReader};
use crate::domain::Isin;

/// How far down the file the header may be.
const HEADER_WITHIN_LINES: usize = 10;

/// Reads a Xetra instruments file.
pub(super) struct XetraReader {
    records: ByteRecords,
    isin: usize,
    name: Option<usize>,
    currency: Option<usize>,
    venue: Option<usize>,
    ticker: Option<usize>,
    first_trading: Option<usize>,
}

impl XetraReader {
    /// Finds the header (the first line with a column named exactly `ISIN`) and the columns.
    pub(super) fn open(input: Box<dyn BufRead + Send>) -> Result<Self, FormatError> {
        let mut records = ByteRecords::new(input, b';', 0)?;
        for _ in 0..HEADER_WITHIN_LINES {
            if !records.advance()? {
                break;
            }
            let header = records.fields();
            let Some(isin) = header.iter().position(|name| name == "ISIN") else { continue };
            let find = |wanted: &str| header.iter().position(|name| name == wanted);
            return Ok(XetraReader {
                isin,
                name: find("Instrument"),
                currency: find("Currency"),
                venue: find("MIC Code"),
                ticker: find("Mnemonic"),
                first_trading: find("First Trading Date"),
                records,
            });
        }
        if records.line() == 0 {
            return Err(FormatError::Empty { format: Format::XetraInstruments });
        }
        Err(FormatError::MissingColumn {
            format: Format::XetraInstruments,
            column: "ISIN".to_owned(),
            searched: format!("the first {HEADER_WITHIN_LINES} lines"),
            found: Vec::new(),
        })
    }

    /// The row of the current record, or why it cannot be used.
    fn row(&self) -> Result<Row, String> {
        let records = &self.records;
        let isin = match records.field(self.isin) {
            Field::Text(isin) => Isin::parse(isin).map_err(|e| format!("ISIN: {e}"))?,
            Field::Missing => {
                return Err(format!(
                    "{} fields, but the ISIN is in column {}",
                    records.record_len(),
                    self.isin + 1
                ));
            }
            Field::NotUtf8 => return Err("ISIN: not valid UTF-8".to_owned()),
        };
        let text = |column: Option<usize>, name: &str| -> Result<Option<String>, String> {
            match column.map(|column| records.field(column)) {
                None | Some(Field::Missing) => Ok(None),
                Some(Field::Text(text)) => Ok(super::non_empty(text)),
                Some(Field::NotUtf8) => Err(format!("{name}: not valid UTF-8")),
            }
        };
        let currency = text(self.currency, "Currency")?;
        Ok(Row {
            line: records.line(),
            isin,
            lei: None,
            name: text(self.name, "Instrument")?,
            cfi: None,
            listing: Some(Listing {
                venue: text(self.venue, "MIC Code")?,
                currency: currency.clone(),
                ticker: text(self.ticker, "Mnemonic")?,
                first_trading: text(self.first_trading, "First Trading Date")?,
                termination: None,
            }),
            currency,
        })
    }
}

impl RowReader for XetraReader {
    fn next_item(&mut self) -> Result<Option<Item>, FormatError> {
        if !self.records.advance()? {
            return Ok(None);
        }
        Ok(Some(self.records.item(self.row(), b';')))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::sources::formats::{FormatOptions, Rejected, open_reader};

    fn read_all(text: &str) -> Result<Vec<Item>, FormatError> {
        let input: Box<dyn BufRead + Send> = Box::new(Cursor::new(text.as_bytes().to_vec()));
        let mut reader = open_reader(Format::XetraInstruments, &FormatOptions::default(), input)?;
        let mut items = Vec::new();
        while let Some(item) = reader.next_item()? {
            items.push(item);
        }
        Ok(items)
    }

    const HEADER: &str =
        "Product Status;Instrument Status;Instrument;ISIN;WKN;Mnemonic;MIC Code;Currency;First Trading Date";

    #[test]
    fn rows_take_their_fields_by_column_name() {
        let file = format!(
            "Market:;XETR\nDate Last Update:;06.01.2025\n{HEADER}\n\
             Active;Active;APPLE INC.;US0378331005;865985;APC;XETR;EUR;2009-11-30\n\
             Active;Active;\"BAYER AG; NA\";DE000BAY0017;BAY001;;XETR;USD;\n"
        );
        let items = read_all(&file).unwrap();
        let [Item::Row(apple), Item::Row(bayer)] = items.as_slice() else { panic!("{items:?}") };
        assert_eq!(apple.line, 4);
        assert_eq!(apple.isin.as_str(), "US0378331005");
        assert_eq!(apple.name.as_deref(), Some("APPLE INC."));
        assert_eq!(apple.currency.as_deref(), Some("EUR"));
        assert_eq!(
            apple.listing,
            Some(Listing {
                venue: Some("XETR".to_owned()),
                currency: Some("EUR".to_owned()),
                ticker: Some("APC".to_owned()),
                first_trading: Some("2009-11-30".to_owned()),
                termination: None,
            })
        );
        assert_eq!(apple.listing_key(), "EUR");
        assert_eq!(bayer.line, 5);
        assert_eq!(bayer.name.as_deref(), Some("BAYER AG; NA"));
        let listing = bayer.listing.as_ref().unwrap();
        assert_eq!((listing.ticker.as_deref(), listing.first_trading.as_deref()), (None, None));
        assert_eq!(bayer.listing_key(), "USD");
    }

    #[test]
    fn a_bom_and_crlf_are_fine_and_the_header_may_be_first() {
        let file =
            format!("\u{feff}{HEADER}\r\nActive;Active;APPLE INC.;US0378331005;865985;APC;XETR;EUR;\r\n");
        let items = read_all(&file).unwrap();
        let [Item::Row(apple)] = items.as_slice() else { panic!("{items:?}") };
        assert_eq!((apple.line, apple.isin.as_str()), (2, "US0378331005"));
        assert_eq!(apple.listing.as_ref().unwrap().first_trading, None);
    }

    #[test]
    fn bad_isins_and_short_lines_are_rejected() {
        let file = format!(
            "Market:;XETR\nDate Last Update:;06.01.2025\n{HEADER}\n\
             Active;Active;LOWER;us0378331005;865985;APC;XETR;EUR;\n\
             Active;Active;SHORT\n\
             Active;Active;APPLE INC.;US0378331005;865985;APC;XETR;EUR;\n"
        );
        let items = read_all(&file).unwrap();
        assert_eq!(
            items[..2],
            [
                Item::Rejected(Rejected {
                    line: 4,
                    reason: "ISIN: character: 'u' at position 1 is not an ASCII letter A-Z".to_owned(),
                    raw: "Active;Active;LOWER;us0378331005;865985;APC;XETR;EUR;".to_owned(),
                }),
                Item::Rejected(Rejected {
                    line: 5,
                    reason: "3 fields, but the ISIN is in column 4".to_owned(),
                    raw: "Active;Active;SHORT".to_owned(),
                }),
            ]
        );
        assert!(matches!(&items[2], Item::Row(row) if row.line == 6));
    }

    #[test]
    fn a_file_without_an_isin_column_fails() {
        let error =
            read_all("Market:;XETR\nDate Last Update:;06.01.2025\nName;Isin\nA;US0378331005\n").unwrap_err();
        assert!(matches!(&error, FormatError::MissingColumn { column, .. } if column == "ISIN"), "{error:?}");
        assert_eq!(
            error.to_string(),
            "no column \"ISIN\" in the first 10 lines; a xetra_instruments file needs it"
        );
        let late = format!("{}{HEADER}\n", "preamble\n".repeat(10));
        assert!(matches!(read_all(&late), Err(FormatError::MissingColumn { .. })));
        assert!(matches!(read_all(""), Err(FormatError::Empty { .. })));
    }

    #[test]
    fn a_column_named_isin_with_other_spelling_is_not_the_header() {
        let file = format!("isin;x\n ISIN;y\n{HEADER}\nActive;Active;A;US0378331005;;;XETR;EUR;\n");
        let items = read_all(&file).unwrap();
        assert!(matches!(items.as_slice(), [Item::Row(row)] if row.line == 4));
    }

    #[test]
    fn a_name_that_is_not_utf8_rejects_the_line() {
        let mut bytes = format!("{HEADER}\n").into_bytes();
        bytes.extend_from_slice(b"Active;Active;M\xFCLLER;DE000BAY0017;;;XETR;EUR;\n");
        let input: Box<dyn BufRead + Send> = Box::new(Cursor::new(bytes));
        let mut reader = open_reader(Format::XetraInstruments, &FormatOptions::default(), input).unwrap();
        let Some(Item::Rejected(rejected)) = reader.next_item().unwrap() else { panic!() };
        assert_eq!((rejected.line, rejected.reason.as_str()), (2, "Instrument: not valid UTF-8"));
    }
}
