//! The FULINS reader's tests: fields, namespaces, entities, bad records and broken files.

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
