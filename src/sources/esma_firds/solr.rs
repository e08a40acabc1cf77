//! Reading ESMA's FIRDS file list, a Solr core (`esma_registers_firds_files`): the address of a
//! page of one publication date's documents, and one page of the answer in XML or JSON, reduced
//! to the fields isinbeat uses. Assembling the pages of a day is [`super::list`]'s work.

use chrono::NaiveDate;
use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use url::Url;

/// ESMA's FIRDS file list.
pub const DEFAULT_LIST_URL: &str = "https://registers.esma.europa.eu/solr/esma_registers_firds_files/select";

/// Documents asked for per page.
pub const DEFAULT_ROWS: u32 = 100;

/// The answer format asked for (`wt=`): a source setting.
pub use crate::domain::locator::ListFormat;

/// The address of one page of a day's list: `q=*`, `fq=publication_date:[D… TO D…]`, `wt`,
/// `indent=true`, `start` and `rows`, after any query `list_url` has.
pub fn page_url(list_url: &Url, date: NaiveDate, format: ListFormat, start: u64, rows: u32) -> Url {
    let day = date.format("%Y-%m-%d");
    let mut url = list_url.clone();
    url.query_pairs_mut()
        .append_pair("q", "*")
        .append_pair("fq", &format!("publication_date:[{day}T00:00:00Z TO {day}T23:59:59Z]"))
        .append_pair("wt", format.as_str())
        .append_pair("indent", "true")
        .append_pair("start", &start.to_string())
        .append_pair("rows", &rows.to_string());
    url
}

/// One listed document, the fields isinbeat reads (as written, untrimmed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Doc {
    pub file_name: Option<String>,
    pub download_link: Option<String>,
    pub checksum: Option<String>,
    pub publication_date: Option<String>,
}

impl Doc {
    /// Keeps `value` for `field` if it is one that is read and not set yet.
    fn set(&mut self, field: &str, value: String) {
        let slot = match field {
            "file_name" => &mut self.file_name,
            "download_link" => &mut self.download_link,
            "checksum" => &mut self.checksum,
            "publication_date" => &mut self.publication_date,
            _ => return,
        };
        slot.get_or_insert(value);
    }
}

/// One page of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub num_found: u64,
    /// The `start` the list answered for, when it says.
    pub start: Option<u64>,
    pub docs: Vec<Doc>,
}

/// Reads one page of a Solr answer.
pub fn parse_page(body: &[u8], format: ListFormat) -> Result<Page, String> {
    match format {
        ListFormat::Xml => parse_xml(body),
        ListFormat::Json => parse_json(body),
    }
}

fn parse_json(body: &[u8]) -> Result<Page, String> {
    use serde_json::Value;
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not valid JSON: {e}"))?;
    let Some(response) = value.get("response") else {
        return Err(match value.pointer("/error/msg").and_then(Value::as_str) {
            Some(message) => format!("the list answered with an error: {message}"),
            None => "the answer has no \"response\" member".to_owned(),
        });
    };
    let num_found = response
        .get("numFound")
        .and_then(Value::as_u64)
        .ok_or("response.numFound is missing or not a whole number")?;
    let docs =
        response.get("docs").and_then(Value::as_array).ok_or("response.docs is missing or not a list")?;
    let docs = docs
        .iter()
        .filter_map(Value::as_object)
        .map(|object| {
            let mut doc = Doc::default();
            for (field, value) in object {
                // A multi-valued field counts by its first value.
                let text = match value {
                    Value::Array(values) => values.first().and_then(Value::as_str),
                    value => value.as_str(),
                };
                if let Some(text) = text {
                    doc.set(field, text.to_owned());
                }
            }
            doc
        })
        .collect();
    Ok(Page { num_found, start: response.get("start").and_then(Value::as_u64), docs })
}

fn parse_xml(body: &[u8]) -> Result<Page, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("the answer is not UTF-8 text: {e}"))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut page = XmlPage::default();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("not well-formed XML at byte {}: {e}", reader.error_position()))?;
        match event {
            Event::Start(start) => {
                page.depth += 1;
                page.open(&start)?;
            }
            Event::Empty(start) => {
                page.depth += 1;
                page.open(&start)?;
                page.close();
                page.depth -= 1;
            }
            Event::End(_) => {
                page.close();
                page.depth = page.depth.saturating_sub(1);
            }
            Event::Text(text) if page.reading => page.text.push_str(&text.xml10_content()),
            Event::CData(data) if page.reading => page.text.push_str(&data),
            Event::GeneralRef(reference) if page.reading => {
                let name: &str = &reference;
                let character = match reference.resolve_char_ref() {
                    Ok(Some(character)) => character,
                    Ok(None) => match name {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        _ => return Err(format!("unknown entity &{name};")),
                    },
                    Err(e) => return Err(format!("invalid character reference &{name};: {e}")),
                };
                page.text.push(character);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    match page.result {
        Some((_, num_found, start)) => Ok(Page { num_found, start, docs: page.docs }),
        None => Err(match page.error {
            Some(message) => format!("the list answered with an error: {}", message.trim()),
            None => "the answer has no <result> element".to_owned(),
        }),
    }
}

/// What has been read of a Solr XML answer: `<response><result numFound start><doc><str
/// name="…">…</str>…</doc>…</result></response>`, or `<lst name="error"><str name="msg">`.
#[derive(Debug, Default)]
struct XmlPage {
    depth: usize,
    /// The `<result>`'s depth, numFound and start.
    result: Option<(usize, u64, Option<u64>)>,
    docs: Vec<Doc>,
    /// The open `<doc>` and its depth.
    doc: Option<(usize, Doc)>,
    /// The open field of the doc, and whether it is multi-valued (`<arr>`).
    field: Option<(String, bool)>,
    /// The depth of Solr's `<lst name="error">`, when one is open.
    error_depth: Option<usize>,
    error: Option<String>,
    /// Whether text is being collected (inside a field value or the error message).
    reading: bool,
    text: String,
}

impl XmlPage {
    fn open(&mut self, start: &BytesStart<'_>) -> Result<(), String> {
        let element = start.local_name();
        let element: &str = element.as_ref();
        let name = attribute(start, "name")?;
        let depth = self.depth;
        if let Some((doc_depth, _)) = &self.doc {
            if depth == doc_depth + 1 {
                let multi = element == "arr";
                self.field = name.map(|name| (name, multi));
                self.start_reading(!multi);
            } else if depth == doc_depth + 2 {
                let multi = matches!(self.field, Some((_, true)));
                self.start_reading(multi);
            }
        } else if let Some((result_depth, ..)) = self.result {
            if depth == result_depth + 1 && element == "doc" {
                self.doc = Some((depth, Doc::default()));
            }
        } else if element == "result" && name.as_deref().is_none_or(|name| name == "response") {
            let number = |key: &str| -> Result<Option<u64>, String> {
                attribute(start, key)?
                    .map(|value| {
                        value.trim().parse::<u64>().map_err(|_| format!("{key}={value:?} is not a number"))
                    })
                    .transpose()
            };
            let num_found = number("numFound")?.ok_or("<result> has no numFound")?;
            self.result = Some((depth, num_found, number("start")?));
        } else if element == "lst" && name.as_deref() == Some("error") && self.error_depth.is_none() {
            self.error_depth = Some(depth);
        } else if self.error_depth.is_some_and(|error| depth == error + 1) && name.as_deref() == Some("msg") {
            self.start_reading(true);
        }
        Ok(())
    }

    fn start_reading(&mut self, reading: bool) {
        self.reading = reading;
        self.text.clear();
    }

    fn close(&mut self) {
        let depth = self.depth;
        if self.reading {
            self.reading = false;
            let text = std::mem::take(&mut self.text);
            match (&mut self.doc, &self.field) {
                (Some((_, doc)), Some((field, _))) => doc.set(field, text),
                (None, _) if self.error_depth.is_some() => {
                    self.error.get_or_insert(text);
                }
                _ => {}
            }
        }
        if let Some((doc_depth, _)) = &self.doc {
            if depth == doc_depth + 1 {
                self.field = None;
            } else if depth == *doc_depth
                && let Some((_, doc)) = self.doc.take()
            {
                self.docs.push(doc);
            }
        }
        if self.error_depth == Some(depth) {
            self.error_depth = None;
        }
    }
}

fn attribute(start: &BytesStart<'_>, key: &str) -> Result<Option<String>, String> {
    match start.try_get_attribute(key) {
        Ok(Some(attribute)) => attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map(|value| Some(value.into_owned()))
            .map_err(|e| format!("attribute {key}: {e}")),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("attributes of an XML element: {e}")),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The fixture week's pages: (publication date, start, XML, JSON).
    pub(in crate::sources::esma_firds) const PAGES: [(&str, u64, &str, &str); 6] = [
        (
            "2025-01-04",
            0,
            include_str!("../../../tests/data/publishers/esma/solr-2025-01-04.xml"),
            include_str!("../../../tests/data/publishers/esma/solr-2025-01-04.json"),
        ),
        (
            "2025-01-05",
            0,
            include_str!("../../../tests/data/publishers/esma/solr-2025-01-05.xml"),
            include_str!("../../../tests/data/publishers/esma/solr-2025-01-05.json"),
        ),
        (
            "2025-01-06",
            0,
            include_str!("../../../tests/data/publishers/esma/solr-2025-01-06-page1.xml"),
            include_str!("../../../tests/data/publishers/esma/solr-2025-01-06-page1.json"),
        ),
        (
            "2025-01-06",
            3,
            include_str!("../../../tests/data/publishers/esma/solr-2025-01-06-page2.xml"),
            include_str!("../../../tests/data/publishers/esma/solr-2025-01-06-page2.json"),
        ),
        (
            "2025-01-07",
            0,
            include_str!("../../../tests/data/publishers/esma/solr-2025-01-07.xml"),
            include_str!("../../../tests/data/publishers/esma/solr-2025-01-07.json"),
        ),
        (
            "2025-01-08",
            0,
            include_str!("../../../tests/data/publishers/esma/solr-2025-01-08.xml"),
            include_str!("../../../tests/data/publishers/esma/solr-2025-01-08.json"),
        ),
    ];

    #[test]
    fn an_xml_page_gives_numfound_start_and_each_documents_fields() {
        let page = parse_page(PAGES[0].2.as_bytes(), ListFormat::Xml).unwrap();
        assert_eq!((page.num_found, page.start), (3, Some(0)));
        let names: Vec<_> = page.docs.iter().map(|doc| doc.file_name.as_deref().unwrap()).collect();
        assert_eq!(
            names,
            ["FULINS_E_20250104_02of02.zip", "FULINS_D_20250104_01of01.zip", "FULINS_E_20250104_01of02.zip"]
        );
        let first = &page.docs[0];
        assert_eq!(
            first.download_link.as_deref(),
            Some("https://firds.esma.europa.eu/firds/FULINS_E_20250104_02of02.zip")
        );
        assert_eq!(first.publication_date.as_deref(), Some("2025-01-04T00:00:00Z"));
        assert_eq!(first.checksum.as_deref().map(str::len), Some(32));
    }

    #[test]
    fn xml_and_json_pages_carry_the_same_documents() {
        for (date, start, xml, json) in PAGES {
            let from_xml = parse_page(xml.as_bytes(), ListFormat::Xml).unwrap();
            let from_json = parse_page(json.as_bytes(), ListFormat::Json).unwrap();
            assert_eq!(from_xml, from_json, "{date} from {start}");
            assert_eq!(from_xml.start, Some(start));
        }
    }

    #[test]
    fn the_marker_document_has_no_file_name_and_no_link() {
        for format in [ListFormat::Xml, ListFormat::Json] {
            let (.., xml, json) = PAGES[5];
            let body = if format == ListFormat::Xml { xml } else { json };
            let page = parse_page(body.as_bytes(), format).unwrap();
            assert_eq!(page.docs.len(), 2);
            assert_eq!(page.docs[1].file_name.as_deref(), Some(""));
            assert_eq!(page.docs[1].download_link, None);
        }
    }

    #[test]
    fn a_page_is_asked_for_as_esma_documents_it() {
        let list = Url::parse(DEFAULT_LIST_URL).unwrap();
        let date = NaiveDate::from_ymd_opt(2025, 1, 6).unwrap();
        let url = page_url(&list, date, ListFormat::Json, 3, 100);
        assert_eq!(url.path(), "/solr/esma_registers_firds_files/select");
        let pairs: Vec<(String, String)> =
            url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let expected = [
            ("q", "*"),
            ("fq", "publication_date:[2025-01-06T00:00:00Z TO 2025-01-06T23:59:59Z]"),
            ("wt", "json"),
            ("indent", "true"),
            ("start", "3"),
            ("rows", "100"),
        ];
        assert_eq!(pairs, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
    }

    #[test]
    fn a_solr_error_is_reported_with_its_message() {
        let xml = r#"<response><lst name="responseHeader"><int name="status">400</int></lst>
            <lst name="error"><str name="msg">Invalid Date String:'2025-13-01'</str><int name="code">400</int></lst></response>"#;
        assert_eq!(
            parse_page(xml.as_bytes(), ListFormat::Xml).unwrap_err(),
            "the list answered with an error: Invalid Date String:'2025-13-01'"
        );
        let json = r#"{"error": {"msg": "undefined field x", "code": 400}}"#;
        assert_eq!(
            parse_page(json.as_bytes(), ListFormat::Json).unwrap_err(),
            "the list answered with an error: undefined field x"
        );
    }

    #[test]
    fn an_answer_that_is_not_a_list_says_so() {
        let html = b"<html><body>Service unavailable</body></html>";
        assert_eq!(parse_page(html, ListFormat::Xml).unwrap_err(), "the answer has no <result> element");
        assert!(parse_page(b"<response><result>", ListFormat::Xml).unwrap_err().contains("numFound"));
        assert!(parse_page(b"<response><result numFound=\"1\"><doc></result>", ListFormat::Xml).is_err());
        assert!(parse_page(html, ListFormat::Json).unwrap_err().starts_with("not valid JSON"));
        assert_eq!(
            parse_page(b"{\"response\": {\"docs\": []}}", ListFormat::Json).unwrap_err(),
            "response.numFound is missing or not a whole number"
        );
    }

    #[test]
    fn entities_are_decoded_and_a_multi_valued_field_counts_by_its_first_value() {
        let xml = r#"<response><result name="response" numFound="1" start="0"><doc>
            <arr name="file_name"><str>DLTINS_20250105_01of01.zip</str><str>other.zip</str></arr>
            <str name="download_link">https://m.example/get?f=1&amp;g=&#50;</str>
            <str name="checksum"><![CDATA[ABC]]></str></doc></result></response>"#;
        let page = parse_page(xml.as_bytes(), ListFormat::Xml).unwrap();
        let doc = &page.docs[0];
        assert_eq!(doc.file_name.as_deref(), Some("DLTINS_20250105_01of01.zip"));
        assert_eq!(doc.download_link.as_deref(), Some("https://m.example/get?f=1&g=2"));
        assert_eq!(doc.checksum.as_deref(), Some("ABC"));
        let json =
            r#"{"response": {"numFound": 1, "docs": [{"file_name": ["DLTINS_20250105_01of01.zip", "x"]}]}}"#;
        let page = parse_page(json.as_bytes(), ListFormat::Json).unwrap();
        assert_eq!(page.docs[0].file_name.as_deref(), Some("DLTINS_20250105_01of01.zip"));
        assert_eq!(page.start, None);
        let unknown = r#"<response><result numFound="1"><doc><str name="file_name">&nbsp;</str></doc></result></response>"#;
        assert!(parse_page(unknown.as_bytes(), ListFormat::Xml).unwrap_err().contains("&nbsp;"));
    }
}
