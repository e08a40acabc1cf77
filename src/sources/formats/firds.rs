//! ESMA FIRDS full reference data (FULINS, auth.017): one `RefData` element per (ISIN, venue),
//! read as a stream of XML events so that a file of hundreds of megabytes never sits in memory.
//!
//! Elements are matched by local name, with or without a namespace prefix. Only the five
//! predefined entities and numeric character references are decoded: a DTD's entities are never
//! expanded, external ones never fetched, and a record that uses one is rejected.

use std::io::BufRead;
use std::sync::Arc;

use quick_xml::Reader;
use quick_xml::events::{BytesRef, BytesStart, Event};

use super::bounded::LineTooLong;
use super::{FormatError, Item, Listing, Rejected, Row, RowReader};
use crate::domain::{Isin, Lei};

/// The longest text kept for one field; a longer one rejects its record instead of growing
/// memory with a hostile file.
const FIELD_MAX_BYTES: usize = 4096;

/// The element names the reader cares about (local names, without a namespace prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    RefData,
    FinInstrmGnlAttrbts,
    TradgVnRltdAttrbts,
    Issr,
    Id,
    FullNm,
    ClssfctnTp,
    NtnlCcy,
    FrstTradDt,
    TermntnDt,
    Other,
}

impl Tag {
    fn of(start: &BytesStart<'_>) -> Tag {
        match start.local_name().as_ref() {
            "RefData" => Tag::RefData,
            "FinInstrmGnlAttrbts" => Tag::FinInstrmGnlAttrbts,
            "TradgVnRltdAttrbts" => Tag::TradgVnRltdAttrbts,
            "Issr" => Tag::Issr,
            "Id" => Tag::Id,
            "FullNm" => Tag::FullNm,
            "ClssfctnTp" => Tag::ClssfctnTp,
            "NtnlCcy" => Tag::NtnlCcy,
            "FrstTradDt" => Tag::FrstTradDt,
            "TermntnDt" => Tag::TermntnDt,
            _ => Tag::Other,
        }
    }
}

/// The children of `RefData` whose fields are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    General,
    Venue,
    Other,
}

/// The fields read from a `RefData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldName {
    Isin,
    Name,
    Cfi,
    Currency,
    Issuer,
    Mic,
    FirstTrading,
    Termination,
}

impl FieldName {
    /// The element's path inside `RefData`, for messages.
    fn path(self) -> &'static str {
        match self {
            FieldName::Isin => "FinInstrmGnlAttrbts/Id",
            FieldName::Name => "FinInstrmGnlAttrbts/FullNm",
            FieldName::Cfi => "FinInstrmGnlAttrbts/ClssfctnTp",
            FieldName::Currency => "FinInstrmGnlAttrbts/NtnlCcy",
            FieldName::Issuer => "Issr",
            FieldName::Mic => "TradgVnRltdAttrbts/Id",
            FieldName::FirstTrading => "TradgVnRltdAttrbts/FrstTradDt",
            FieldName::Termination => "TradgVnRltdAttrbts/TermntnDt",
        }
    }
}

/// What has been read of the current `RefData`.
#[derive(Debug, Default)]
struct Record {
    isin: Option<String>,
    name: Option<String>,
    cfi: Option<String>,
    currency: Option<String>,
    issuer: Option<String>,
    mic: Option<String>,
    first_trading: Option<String>,
    termination: Option<String>,
    /// The first reason the record cannot be used, found while reading it.
    problem: Option<String>,
}

impl Record {
    fn slot(&mut self, field: FieldName) -> &mut Option<String> {
        match field {
            FieldName::Isin => &mut self.isin,
            FieldName::Name => &mut self.name,
            FieldName::Cfi => &mut self.cfi,
            FieldName::Currency => &mut self.currency,
            FieldName::Issuer => &mut self.issuer,
            FieldName::Mic => &mut self.mic,
            FieldName::FirstTrading => &mut self.first_trading,
            FieldName::Termination => &mut self.termination,
        }
    }

    fn reject(&mut self, reason: String) {
        self.problem.get_or_insert(reason);
    }

    /// The record as a row, or why it cannot be used.
    fn into_row(self, line: u64) -> Result<Row, String> {
        if let Some(problem) = self.problem {
            return Err(problem);
        }
        let Some(isin) = self.isin else {
            return Err(format!("no ISIN: the record has no {}", FieldName::Isin.path()));
        };
        let isin = Isin::parse(&isin).map_err(|e| format!("ISIN: {e}"))?;
        let lei = match self.issuer {
            Some(issuer) => Some(Lei::parse(&issuer).map_err(|e| format!("LEI: {e}"))?),
            None => None,
        };
        let listing = Listing {
            venue: self.mic,
            currency: None,
            ticker: None,
            first_trading: self.first_trading.map(date_part),
            termination: self.termination.map(date_part),
        };
        Ok(Row {
            line,
            isin,
            lei,
            name: self.name,
            cfi: self.cfi,
            currency: self.currency,
            listing: (listing != Listing::default()).then_some(listing),
        })
    }

    /// A short description of the record for people (the XML has no lines worth quoting).
    fn describe(&self, ordinal: u64) -> String {
        let mut text = format!("RefData #{ordinal}");
        for (label, value) in
            [("Id", &self.isin), ("FullNm", &self.name), ("Issr", &self.issuer), ("venue", &self.mic)]
        {
            if let Some(value) = value {
                text.push_str(&format!(" {label}={value:?}"));
            }
        }
        text
    }
}

/// `2007-11-25` of `2007-11-25T07:00:00Z`; a value without a time as it is.
fn date_part(mut value: String) -> String {
    if let Some(end) = value.find('T') {
        value.truncate(end);
    }
    value
}

/// Reads a FIRDS FULINS XML file record by record.
pub(super) struct FirdsReader {
    reader: Reader<Box<dyn BufRead + Send>>,
    /// The event buffer, reused for every event.
    buffer: Vec<u8>,
    /// How many elements are open.
    depth: usize,
    /// Whether any element has been seen.
    seen_root: bool,
    /// The depth of the open `RefData`, if one is open.
    record_depth: Option<usize>,
    /// The open child of `RefData`.
    part: Option<Part>,
    /// The open field element and its depth.
    field: Option<(FieldName, usize)>,
    /// The open field's text so far.
    text: String,
    /// How many `RefData` elements have started.
    ordinal: u64,
    record: Record,
    finished: bool,
}

impl FirdsReader {
    pub(super) fn new(input: Box<dyn BufRead + Send>) -> Self {
        let mut reader = Reader::from_reader(input);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.trim_text(false);
        FirdsReader {
            reader,
            buffer: Vec::with_capacity(4096),
            depth: 0,
            seen_root: false,
            record_depth: None,
            part: None,
            field: None,
            text: String::new(),
            ordinal: 0,
            record: Record::default(),
            finished: false,
        }
    }

    /// A `FormatError` for a parser error, keeping read failures (such as the size cap) as I/O.
    fn error(&self, error: quick_xml::Error) -> FormatError {
        match error {
            quick_xml::Error::Io(error) => {
                match error.get_ref().and_then(|e| e.downcast_ref::<LineTooLong>()) {
                    Some(too_long) => FormatError::TooLong(too_long.0.clone()),
                    None => FormatError::Io(
                        Arc::try_unwrap(error)
                            .unwrap_or_else(|shared| std::io::Error::new(shared.kind(), shared.to_string())),
                    ),
                }
            }
            error => FormatError::Xml { position: self.reader.error_position(), message: error.to_string() },
        }
    }

    /// Handles an opening tag at the new `self.depth`.
    fn open(&mut self, tag: Tag) {
        let depth = self.depth;
        match self.record_depth {
            None if tag == Tag::RefData => {
                self.record_depth = Some(depth);
                self.ordinal += 1;
                self.record = Record::default();
            }
            None => {}
            Some(record) if depth == record + 1 => {
                self.part = Some(match tag {
                    Tag::FinInstrmGnlAttrbts => Part::General,
                    Tag::TradgVnRltdAttrbts => Part::Venue,
                    Tag::Issr => {
                        self.start_field(FieldName::Issuer, depth);
                        Part::Other
                    }
                    _ => Part::Other,
                });
            }
            Some(record) if depth == record + 2 => {
                let field = match (self.part, tag) {
                    (Some(Part::General), Tag::Id) => FieldName::Isin,
                    (Some(Part::General), Tag::FullNm) => FieldName::Name,
                    (Some(Part::General), Tag::ClssfctnTp) => FieldName::Cfi,
                    (Some(Part::General), Tag::NtnlCcy) => FieldName::Currency,
                    (Some(Part::Venue), Tag::Id) => FieldName::Mic,
                    (Some(Part::Venue), Tag::FrstTradDt) => FieldName::FirstTrading,
                    (Some(Part::Venue), Tag::TermntnDt) => FieldName::Termination,
                    _ => return,
                };
                self.start_field(field, depth);
            }
            Some(_) => {}
        }
    }

    fn start_field(&mut self, field: FieldName, depth: usize) {
        self.field = Some((field, depth));
        self.text.clear();
    }

    /// Handles a closing tag at `self.depth` (before it is decreased); the finished record, if
    /// this closes a `RefData`.
    fn close(&mut self) -> Option<Item> {
        let depth = self.depth;
        if let Some((field, field_depth)) = self.field
            && field_depth == depth
        {
            self.field = None;
            let text = std::mem::take(&mut self.text);
            let slot = self.record.slot(field);
            if slot.is_some() {
                self.record.reject(format!("{} appears twice", field.path()));
            } else if !text.is_empty() {
                *slot = Some(text);
            }
        }
        let record_depth = self.record_depth?;
        if depth == record_depth + 1 {
            self.part = None;
        }
        if depth != record_depth {
            return None;
        }
        self.record_depth = None;
        let record = std::mem::take(&mut self.record);
        let description = record.describe(self.ordinal);
        Some(match record.into_row(self.ordinal) {
            Ok(row) => Item::Row(row),
            Err(reason) => Item::Rejected(Rejected::new(self.ordinal, reason, description.as_bytes())),
        })
    }

    /// Adds text to the open field, if it is at the field's own level.
    fn push_text(&mut self, text: &str) {
        let Some((field, depth)) = self.field else { return };
        if depth != self.depth {
            return;
        }
        if self.text.len() + text.len() > FIELD_MAX_BYTES {
            self.record.reject(format!("{} is longer than {FIELD_MAX_BYTES} bytes", field.path()));
            return;
        }
        self.text.push_str(text);
    }

    /// Decodes `&name;` or `&#number;` into the open field; anything but the five predefined
    /// entities and character references rejects the record.
    fn push_reference(&mut self, reference: &BytesRef<'_>) {
        if self.record_depth.is_none() {
            return;
        }
        let name: &str = reference;
        let decoded = match reference.resolve_char_ref() {
            Ok(Some(character)) => Some(character),
            Err(_) => {
                self.record.reject(format!("invalid character reference &{name};"));
                return;
            }
            Ok(None) => match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => None,
            },
        };
        match decoded {
            Some(character) => {
                let mut utf8 = [0; 4];
                self.push_text(character.encode_utf8(&mut utf8));
            }
            None => self.record.reject(format!("unknown entity &{name};")),
        }
    }

    /// Reads one event into `buffer`; `Some(item)` when it finished a record, `None` to go on.
    fn step(&mut self, buffer: &mut Vec<u8>) -> Result<Option<Option<Item>>, FormatError> {
        buffer.clear();
        let event = match self.reader.read_event_into(buffer) {
            Ok(event) => event,
            Err(error) => {
                self.finished = true;
                return Err(self.error(error));
            }
        };
        match event {
            Event::Start(start) => {
                self.depth += 1;
                self.seen_root = true;
                self.open(Tag::of(&start));
            }
            Event::Empty(start) => {
                self.depth += 1;
                self.seen_root = true;
                self.open(Tag::of(&start));
                let item = self.close();
                self.depth -= 1;
                if item.is_some() {
                    return Ok(Some(item));
                }
            }
            Event::End(_) => {
                let item = self.close();
                self.depth = self.depth.saturating_sub(1);
                if item.is_some() {
                    return Ok(Some(item));
                }
            }
            Event::Text(text) => self.push_text(&text.xml10_content()),
            Event::CData(data) => self.push_text(&data),
            Event::GeneralRef(reference) => self.push_reference(&reference),
            // A DTD is never read: its entities stay unknown, so a record that uses one is
            // rejected rather than expanded.
            Event::DocType(_) | Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => {
                self.finished = true;
                let position = self.reader.buffer_position();
                if !self.seen_root {
                    return Err(FormatError::Xml {
                        position,
                        message: "the file holds no XML element (is it an XML file?)".to_owned(),
                    });
                }
                if self.depth > 0 {
                    return Err(FormatError::Xml {
                        position,
                        message: format!(
                            "the file ends with {} element(s) still open (truncated download?)",
                            self.depth
                        ),
                    });
                }
                return Ok(Some(None));
            }
        }
        Ok(None)
    }
}

impl RowReader for FirdsReader {
    fn next_item(&mut self) -> Result<Option<Item>, FormatError> {
        if self.finished {
            return Ok(None);
        }
        // The buffer is taken out while an event borrows it, so the handlers can use `self`.
        let mut buffer = std::mem::take(&mut self.buffer);
        let result = loop {
            match self.step(&mut buffer) {
                Ok(None) => continue,
                Ok(Some(item)) => break Ok(item),
                Err(error) => break Err(error),
            }
        };
        self.buffer = buffer;
        result
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::sources::formats::{Format, FormatOptions, open_reader};

    fn read_all(xml: &str) -> Result<Vec<Item>, FormatError> {
        let input: Box<dyn BufRead + Send> = Box::new(Cursor::new(xml.as_bytes().to_vec()));
        let mut reader = open_reader(Format::FirdsFulins, &FormatOptions::default(), input)?;
        let mut items = Vec::new();
        while let Some(item) = reader.next_item()? {
            items.push(item);
        }
        Ok(items)
    }

    /// A FULINS document with `records` inside the report.
    fn document(records: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><BizData xmlns="urn:iso:std:iso:20022:tech:xsd:head.003.001.01"><Hdr><AppHdr><Fr><OrgId><Id><OrgId><Othr><Id>EU</Id></Othr></OrgId></Id></OrgId></Fr></AppHdr></Hdr><Pyld><Document xmlns="urn:iso:std:iso:20022:tech:xsd:auth.017.001.02"><FinInstrmRptgRefDataRpt><RptHdr><RptgNtty><NtlCmptntAuthrty>EU</NtlCmptntAuthrty></RptgNtty></RptHdr>{records}</FinInstrmRptgRefDataRpt></Document></Pyld></BizData>"#
        )
    }

    fn record(isin: &str, name: &str, lei: &str, venue: &str, extra: &str) -> String {
        format!(
            "<RefData><FinInstrmGnlAttrbts><Id>{isin}</Id><FullNm>{name}</FullNm><ShrtNm>X/SHS</ShrtNm>\
             <ClssfctnTp>ESVUFR</ClssfctnTp><NtnlCcy>EUR</NtnlCcy><CmmdtyDerivInd>false</CmmdtyDerivInd>\
             </FinInstrmGnlAttrbts><Issr>{lei}</Issr><TradgVnRltdAttrbts><Id>{venue}</Id><IssrReq>true</IssrReq>\
             <FrstTradDt>2007-11-25T07:00:00Z</FrstTradDt>{extra}</TradgVnRltdAttrbts><TechAttrbts>\
             <RlvntCmptntAuthrty>DE</RlvntCmptntAuthrty><RlvntTradgVn>XETR</RlvntTradgVn></TechAttrbts></RefData>"
        )
    }

    fn row(item: &Item) -> &Row {
        match item {
            Item::Row(row) => row,
            Item::Rejected(rejected) => panic!("rejected: {rejected:?}"),
        }
    }

    fn reason(item: &Item) -> (u64, &str) {
        match item {
            Item::Rejected(rejected) => (rejected.line, rejected.reason.as_str()),
            Item::Row(row) => panic!("a row: {row:?}"),
        }
    }

    #[test]
    fn each_refdata_is_a_row_with_its_fields() {
        let xml = document(&format!(
            "{}{}",
            record("DE000BAY0017", "Bayer AG", "5493001KJTIIGC8Y1R12", "XETR", ""),
            record(
                "DE000BAY0017",
                "Bayer AG",
                "5493001KJTIIGC8Y1R12",
                "XFRA",
                "<TermntnDt>2024-01-31T23:59:59Z</TermntnDt>"
            ),
        ));
        let items = read_all(&xml).unwrap();
        assert_eq!(items.len(), 2);
        let first = row(&items[0]);
        assert_eq!(first.line, 1);
        assert_eq!(first.isin.as_str(), "DE000BAY0017");
        assert_eq!(first.name.as_deref(), Some("Bayer AG"));
        assert_eq!(first.cfi.as_deref(), Some("ESVUFR"));
        assert_eq!(first.currency.as_deref(), Some("EUR"));
        assert_eq!(first.lei.map(|lei| lei.to_string()).as_deref(), Some("5493001KJTIIGC8Y1R12"));
        assert_eq!(
            first.listing,
            Some(Listing {
                venue: Some("XETR".to_owned()),
                first_trading: Some("2007-11-25".to_owned()),
                ..Listing::default()
            })
        );
        assert_eq!(first.listing_key(), "XETR");
        let second = row(&items[1]);
        assert_eq!(second.line, 2);
        assert_eq!(second.listing_key(), "XFRA");
        assert_eq!(second.listing.as_ref().unwrap().termination.as_deref(), Some("2024-01-31"));
    }

    #[test]
    fn namespace_prefixes_do_not_matter() {
        let xml = r#"<?xml version="1.0"?><h:BizData xmlns:h="urn:h" xmlns:a="urn:a"><h:Pyld><a:Document><a:FinInstrmRptgRefDataRpt><a:RefData><a:FinInstrmGnlAttrbts><a:Id>US0378331005</a:Id><a:FullNm>Apple Inc.</a:FullNm></a:FinInstrmGnlAttrbts><a:TradgVnRltdAttrbts><a:Id>XETR</a:Id></a:TradgVnRltdAttrbts></a:RefData></a:FinInstrmRptgRefDataRpt></a:Document></h:Pyld></h:BizData>"#;
        let items = read_all(xml).unwrap();
        let apple = row(&items[0]);
        assert_eq!(
            (apple.isin.as_str(), apple.name.as_deref(), apple.lei),
            ("US0378331005", Some("Apple Inc."), None)
        );
        assert_eq!(apple.listing_key(), "XETR");
    }

    #[test]
    fn predefined_entities_and_character_references_are_decoded() {
        let xml = document(&record(
            "DE000BAY0017",
            "M&#252;ller &amp; S&#xF6;hne &lt;Brands&gt; &quot;Q&quot; d&apos;&#201;nergie <![CDATA[& Co]]>",
            "5493001KJTIIGC8Y1R12",
            "XETR",
            "",
        ));
        let items = read_all(&xml).unwrap();
        assert_eq!(row(&items[0]).name.as_deref(), Some("Müller & Söhne <Brands> \"Q\" d'Énergie & Co"));
    }

    #[test]
    fn a_declared_entity_is_never_expanded_and_rejects_its_record() {
        let xml = format!(
            "<?xml version=\"1.0\"?><!DOCTYPE BizData [<!ENTITY boom \"BOOM-TEXT\"><!ENTITY file SYSTEM \"file:///etc/passwd\">]>{}",
            &document(&format!(
                "{}{}{}",
                record("DE000BAY0017", "Bayer &boom; AG", "5493001KJTIIGC8Y1R12", "XETR", ""),
                record("US0378331005", "Apple &file;", "HWUPKR0MPOU8FGXBT394", "XETR", ""),
                record("GB00B03MLX29", "Royal Dutch", "HWUPKR0MPOU8FGXBT394", "XLON", ""),
            ))["<?xml version=\"1.0\" encoding=\"UTF-8\"?>".len()..]
        );
        let items = read_all(&xml).unwrap();
        assert_eq!(reason(&items[0]), (1, "unknown entity &boom;"));
        assert_eq!(reason(&items[1]), (2, "unknown entity &file;"));
        assert_eq!(row(&items[2]).isin.as_str(), "GB00B03MLX29");
        for item in &items {
            let text = format!("{item:?}");
            assert!(!text.contains("BOOM-TEXT") && !text.contains("root:"), "{text}");
        }
    }

    #[test]
    fn bad_records_are_rejected_and_the_rest_read() {
        let xml = document(&format!(
            "{}{}{}{}{}",
            record("US0378331000", "Wrong check digit", "HWUPKR0MPOU8FGXBT394", "XETR", ""),
            "<RefData><Issr>HWUPKR0MPOU8FGXBT394</Issr></RefData>",
            record("US0378331005", "Bad LEI", "HWUPKR0MPOU8FGXBT395", "XETR", ""),
            "<RefData/>",
            record("US0378331005", "Good", "HWUPKR0MPOU8FGXBT394", "XETR", ""),
        ));
        let items = read_all(&xml).unwrap();
        assert_eq!(reason(&items[0]), (1, "ISIN: check digit: 0, expected 5"));
        assert_eq!(reason(&items[1]), (2, "no ISIN: the record has no FinInstrmGnlAttrbts/Id"));
        assert_eq!(reason(&items[2]), (3, "LEI: check digits: 95, expected 94"));
        assert_eq!(reason(&items[3]), (4, "no ISIN: the record has no FinInstrmGnlAttrbts/Id"));
        assert_eq!(row(&items[4]).line, 5);
        let Item::Rejected(rejected) = &items[0] else { panic!() };
        assert_eq!(
            rejected.raw,
            r#"RefData #1 Id="US0378331000" FullNm="Wrong check digit" Issr="HWUPKR0MPOU8FGXBT394" venue="XETR""#
        );
    }

    #[test]
    fn nothing_is_trimmed() {
        let xml = document(&record(" US0378331005", "Apple", "HWUPKR0MPOU8FGXBT394", "XETR", ""));
        let items = read_all(&xml).unwrap();
        assert_eq!(reason(&items[0]), (1, "ISIN: length: 13 characters, an ISIN has 12"));
    }

    #[test]
    fn a_truncated_file_fails_with_a_position() {
        let xml = document(&record("US0378331005", "Apple", "HWUPKR0MPOU8FGXBT394", "XETR", ""));
        for cut in [xml.len() / 2, xml.len() - 5, xml.len() - 12] {
            let result = read_all(&xml[..cut]);
            match result {
                Err(FormatError::Xml { position, message }) => {
                    assert!(position > 0 && position <= cut as u64, "{position} {message}");
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_xml_and_other_files_fail() {
        for text in ["<BizData><RefData></BizData>", "LEI,ISIN\n5493001KJTIIGC8Y1R12,US0378331005\n", ""] {
            assert!(matches!(read_all(text), Err(FormatError::Xml { .. })), "{text:?}");
        }
        let error = read_all("<a><b>&undefined</b></a>").unwrap_err();
        assert!(matches!(error, FormatError::Xml { .. }), "{error}");
    }

    #[test]
    fn an_overlong_field_rejects_its_record() {
        let name = "x".repeat(FIELD_MAX_BYTES + 1);
        let xml = document(&record("US0378331005", &name, "HWUPKR0MPOU8FGXBT394", "XETR", ""));
        let items = read_all(&xml).unwrap();
        assert_eq!(reason(&items[0]), (1, "FinInstrmGnlAttrbts/FullNm is longer than 4096 bytes"));
    }

    #[test]
    fn a_report_without_records_is_empty() {
        assert_eq!(read_all(&document("")).unwrap(), []);
    }
}
