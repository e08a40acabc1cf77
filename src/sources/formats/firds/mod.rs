//! ESMA FIRDS reference data, read as a stream of XML events so that a file of hundreds of
//! megabytes never sits in memory: the full file (FULINS, auth.017) has one `RefData` element per
//! (ISIN, venue); [`records`] also reads the delta (DLTINS, auth.036: `NewRcrd`, `ModfdRcrd`,
//! `TermntdRcrd`, `CancRcrd` inside `FinInstrm`) and the cancellations (FULCAN, auth.102:
//! `CxlData`), each record with its kind. The `firds_fulins` format reads `RefData` only.
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

pub mod records;

pub use records::{FirdsItem, FirdsRecordReader, RecordKind};

/// The longest text kept for one field; a longer one rejects its record instead of growing
/// memory with a hostile file.
const FIELD_MAX_BYTES: usize = 4096;

/// The element names the reader cares about (local names, without a namespace prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    /// A record element: one instrument on one venue.
    Record(RecordKind),
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
            "RefData" => Tag::Record(RecordKind::RefData),
            "NewRcrd" => Tag::Record(RecordKind::NewRcrd),
            "ModfdRcrd" => Tag::Record(RecordKind::ModfdRcrd),
            "TermntdRcrd" => Tag::Record(RecordKind::TermntdRcrd),
            "CancRcrd" => Tag::Record(RecordKind::CancRcrd),
            "CxlData" => Tag::Record(RecordKind::CxlData),
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

/// The children of a record whose fields are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    General,
    Venue,
    Other,
}

/// The fields read from a record.
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
    /// The element's path inside the record, for messages.
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

/// What has been read of the current record.
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
    fn describe(&self, kind: RecordKind, ordinal: u64) -> String {
        let mut text = format!("{} #{ordinal}", kind.as_str());
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

/// Which record elements a reader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kinds {
    /// `RefData` only (the `firds_fulins` format): any other element is not a record.
    FullOnly,
    /// Every kind of [`RecordKind`].
    All,
}

/// Reads a FIRDS XML file record by record.
pub(super) struct FirdsReader {
    kinds: Kinds,
    /// The kind of the open (or last) record.
    kind: RecordKind,
    reader: Reader<Box<dyn BufRead + Send>>,
    /// The event buffer, reused for every event.
    buffer: Vec<u8>,
    /// How many elements are open.
    depth: usize,
    /// Whether any element has been seen.
    seen_root: bool,
    /// The depth of the open record, if one is open.
    record_depth: Option<usize>,
    /// The open child of the record.
    part: Option<Part>,
    /// The open field element and its depth.
    field: Option<(FieldName, usize)>,
    /// The open field's text so far.
    text: String,
    /// How many records have started.
    ordinal: u64,
    record: Record,
    finished: bool,
}

impl FirdsReader {
    /// A reader of the full file's `RefData` records.
    pub(super) fn new(input: Box<dyn BufRead + Send>) -> Self {
        Self::reading(input, Kinds::FullOnly)
    }

    fn reading(input: Box<dyn BufRead + Send>, kinds: Kinds) -> Self {
        let mut reader = Reader::from_reader(input);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.trim_text(false);
        FirdsReader {
            kinds,
            kind: RecordKind::RefData,
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
            None => {
                if let Tag::Record(kind) = tag
                    && (self.kinds == Kinds::All || kind == RecordKind::RefData)
                {
                    self.kind = kind;
                    self.record_depth = Some(depth);
                    self.ordinal += 1;
                    self.record = Record::default();
                }
            }
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
    /// this closes one.
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
        let description = record.describe(self.kind, self.ordinal);
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

impl FirdsReader {
    /// The next record with its kind; `None` at the end of the file.
    fn next_record(&mut self) -> Result<Option<(RecordKind, Item)>, FormatError> {
        if self.finished {
            return Ok(None);
        }
        // The buffer is taken out while an event borrows it, so the handlers can use `self`.
        let mut buffer = std::mem::take(&mut self.buffer);
        let result = loop {
            match self.step(&mut buffer) {
                Ok(None) => continue,
                Ok(Some(item)) => break Ok(item.map(|item| (self.kind, item))),
                Err(error) => break Err(error),
            }
        };
        self.buffer = buffer;
        result
    }
}

impl RowReader for FirdsReader {
    fn next_item(&mut self) -> Result<Option<Item>, FormatError> {
        Ok(self.next_record()?.map(|(_, item)| item))
    }
}

#[cfg(test)]
mod tests;
