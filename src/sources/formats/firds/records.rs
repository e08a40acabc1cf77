//! FIRDS records of every kind, each with the kind it came as: `RefData` of a full file
//! (FULINS), `NewRcrd`, `ModfdRcrd`, `TermntdRcrd` and `CancRcrd` of a delta (DLTINS), and
//! `CxlData` of a cancellations file (FULCAN). Fields and validation are the full file's (see the
//! parent module); what a kind means is the importer's business.

use std::io::BufRead;

use super::super::bounded::{Boundary, LineCapped};
use super::super::{FormatError, Item, Rejected, Row};
use super::{FirdsReader, Kinds};

/// The element a record came as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    /// A full file's record (FULINS).
    RefData,
    /// A delta's new (ISIN, venue).
    NewRcrd,
    /// A delta's modified reference data.
    ModfdRcrd,
    /// A delta's (ISIN, venue) that stopped trading.
    TermntdRcrd,
    /// A delta's cancelled (ISIN, venue).
    CancRcrd,
    /// A cancellations file's record (FULCAN).
    CxlData,
}

impl RecordKind {
    /// Every kind, in the order above.
    pub const ALL: [RecordKind; 6] = [
        RecordKind::RefData,
        RecordKind::NewRcrd,
        RecordKind::ModfdRcrd,
        RecordKind::TermntdRcrd,
        RecordKind::CancRcrd,
        RecordKind::CxlData,
    ];

    /// The element's name, as the files and ESMA's documents write it.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::RefData => "RefData",
            RecordKind::NewRcrd => "NewRcrd",
            RecordKind::ModfdRcrd => "ModfdRcrd",
            RecordKind::TermntdRcrd => "TermntdRcrd",
            RecordKind::CancRcrd => "CancRcrd",
            RecordKind::CxlData => "CxlData",
        }
    }

    /// The kind whose element is called `name`.
    pub fn parse(name: &str) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// One record of a FIRDS file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirdsItem {
    /// A valid record. `row.line` is its 1-based ordinal in the file; its listing has the venue
    /// (`TradgVnRltdAttrbts/Id`, absent when the record has none) and the date parts of
    /// `FrstTradDt` and `TermntnDt`.
    Record { kind: RecordKind, row: Row },
    /// A record that cannot be used, and why (an invalid ISIN or LEI, an entity, …).
    Rejected { kind: RecordKind, rejected: Rejected },
}

impl FirdsItem {
    pub fn kind(&self) -> RecordKind {
        match self {
            FirdsItem::Record { kind, .. } | FirdsItem::Rejected { kind, .. } => *kind,
        }
    }
}

/// Reads every record of a FIRDS file (full, delta or cancellations), in document order.
pub struct FirdsRecordReader {
    inner: FirdsReader,
}

impl FirdsRecordReader {
    /// A reader over the decompressed XML `input`, read through the same text cap as every
    /// source file.
    pub fn open(input: Box<dyn BufRead + Send>) -> Self {
        let capped: Box<dyn BufRead + Send> =
            Box::new(std::io::BufReader::with_capacity(1 << 16, LineCapped::new(input, Boundary::Tag)));
        Self { inner: FirdsReader::reading(capped, Kinds::All) }
    }

    /// The next record; `None` at the end of the file. An error means the file is unusable.
    pub fn next_record(&mut self) -> Result<Option<FirdsItem>, FormatError> {
        Ok(self.inner.next_record()?.map(|(kind, item)| match item {
            Item::Row(row) => FirdsItem::Record { kind, row },
            Item::Rejected(rejected) => FirdsItem::Rejected { kind, rejected },
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn read_all(xml: &str) -> Result<Vec<FirdsItem>, FormatError> {
        let mut reader = FirdsRecordReader::open(Box::new(Cursor::new(xml.as_bytes().to_vec())));
        let mut items = Vec::new();
        while let Some(item) = reader.next_record()? {
            items.push(item);
        }
        Ok(items)
    }

    fn body(isin: &str, mic: &str, termination: &str) -> String {
        format!(
            "<FinInstrmGnlAttrbts><Id>{isin}</Id><FullNm>Name of {isin}</FullNm><ClssfctnTp>ESVUFR</ClssfctnTp>\
             <NtnlCcy>EUR</NtnlCcy></FinInstrmGnlAttrbts><Issr>5493001KJTIIGC8Y1R12</Issr><TradgVnRltdAttrbts>\
             <Id>{mic}</Id><FrstTradDt>2020-01-02T07:00:00Z</FrstTradDt>{termination}</TradgVnRltdAttrbts>\
             <TechAttrbts><RlvntCmptntAuthrty>DE</RlvntCmptntAuthrty></TechAttrbts>"
        )
    }

    fn delta(records: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><BizData xmlns="urn:iso:std:iso:20022:tech:xsd:head.003.001.01"><Hdr><AppHdr><MsgDefIdr>auth.036.001.03</MsgDefIdr></AppHdr></Hdr><Pyld><Document xmlns="urn:iso:std:iso:20022:tech:xsd:auth.036.001.03"><FinInstrmRptgRefDataDltaRpt><RptHdr><RptgNtty><NtlCmptntAuthrty>EU</NtlCmptntAuthrty></RptgNtty><RptgPrd><Dt>2025-01-06</Dt></RptgPrd></RptHdr>{records}</FinInstrmRptgRefDataDltaRpt></Document></Pyld></BizData>"#
        )
    }

    fn kinds_and_keys(items: &[FirdsItem]) -> Vec<(RecordKind, u64, String, String)> {
        items
            .iter()
            .map(|item| match item {
                FirdsItem::Record { kind, row } => {
                    (*kind, row.line, row.isin.to_string(), row.listing_key().to_owned())
                }
                FirdsItem::Rejected { kind, rejected } => {
                    (*kind, rejected.line, rejected.reason.clone(), String::new())
                }
            })
            .collect()
    }

    #[test]
    fn each_delta_record_comes_with_its_kind_in_document_order() {
        let termination = "<TermntnDt>2025-01-05T23:59:59Z</TermntnDt>";
        let xml = delta(&format!(
            "<FinInstrm><NewRcrd>{}</NewRcrd></FinInstrm><FinInstrm><ModfdRcrd>{}</ModfdRcrd></FinInstrm>\
             <FinInstrm><TermntdRcrd>{}</TermntdRcrd></FinInstrm><FinInstrm><CancRcrd>{}</CancRcrd></FinInstrm>",
            body("DE000BAY0017", "XETR", ""),
            body("US0378331005", "XFRA", ""),
            body("DE000BAY0017", "XFRA", termination),
            body("US0378331005", "XETR", ""),
        ));
        let items = read_all(&xml).unwrap();
        assert_eq!(
            kinds_and_keys(&items),
            [
                (RecordKind::NewRcrd, 1, "DE000BAY0017".to_owned(), "XETR".to_owned()),
                (RecordKind::ModfdRcrd, 2, "US0378331005".to_owned(), "XFRA".to_owned()),
                (RecordKind::TermntdRcrd, 3, "DE000BAY0017".to_owned(), "XFRA".to_owned()),
                (RecordKind::CancRcrd, 4, "US0378331005".to_owned(), "XETR".to_owned()),
            ]
        );
        let FirdsItem::Record { row, .. } = &items[2] else { panic!("{:?}", items[2]) };
        let listing = row.listing.as_ref().unwrap();
        assert_eq!(listing.termination.as_deref(), Some("2025-01-05"));
        assert_eq!(listing.first_trading.as_deref(), Some("2020-01-02"));
        assert_eq!(row.name.as_deref(), Some("Name of DE000BAY0017"));
    }

    #[test]
    fn cancellations_and_full_records_are_read_and_bad_ones_rejected_with_their_kind() {
        let xml = format!(
            r#"<BizData><Pyld><Document><FinInstrmRptgCxlRpt><RptHdr/><CxlData>{}</CxlData><CxlData>{}</CxlData></FinInstrmRptgCxlRpt><FinInstrmRptgRefDataRpt><RefData>{}</RefData></FinInstrmRptgRefDataRpt></Document></Pyld></BizData>"#,
            body("FR0000120271", "XPAR", ""),
            body("IT0008401192", "MTAA", ""),
            body("US0378331005", "XETR", ""),
        );
        let items = read_all(&xml).unwrap();
        assert_eq!(
            kinds_and_keys(&items),
            [
                (RecordKind::CxlData, 1, "FR0000120271".to_owned(), "XPAR".to_owned()),
                (RecordKind::CxlData, 2, "ISIN: check digit: 2, expected 9".to_owned(), String::new()),
                (RecordKind::RefData, 3, "US0378331005".to_owned(), "XETR".to_owned()),
            ]
        );
        let FirdsItem::Rejected { rejected, .. } = &items[1] else { panic!() };
        assert!(rejected.raw.starts_with("CxlData #2 Id=\"IT0008401192\""), "{}", rejected.raw);
    }

    #[test]
    fn the_full_file_format_still_reads_refdata_only() {
        use crate::sources::formats::{Format, FormatOptions, open_reader};
        let xml =
            delta(&format!("<FinInstrm><NewRcrd>{}</NewRcrd></FinInstrm>", body("DE000BAY0017", "XETR", "")));
        let input: Box<dyn BufRead + Send> = Box::new(Cursor::new(xml.into_bytes()));
        let mut reader = open_reader(Format::FirdsFulins, &FormatOptions::default(), input).unwrap();
        assert_eq!(reader.next_item().unwrap(), None);
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in RecordKind::ALL {
            assert_eq!(RecordKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(RecordKind::parse("Rcrd"), None);
    }
}
