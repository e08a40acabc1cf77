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

/// The answer format asked for (`wt=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListFormat {
    #[default]
    Xml,
    Json,
}

impl ListFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ListFormat::Xml => "xml",
            ListFormat::Json => "json",
        }
    }
}

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
