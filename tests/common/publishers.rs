//! A fake of the three real publishers on 127.0.0.1, answering from `tests/data/publishers/` as
//! that folder's README says the real ones answer:
//!
//! | request | answer |
//! |---|---|
//! | `GET /api/v2/isin-lei?page[number]=N&page[size]=3` (no `page[number]`: 1) | `gleif/listing-pageN.json` |
//! | `GET /api/v2/isin-lei/latest` | `gleif/latest.json` |
//! | `GET /api/v2/isin-lei/<id>/download` | `gleif/isin-lei-20250107T071509.zip` for its id, else 404 |
//! | `GET /cash-en/trading/Tradable-Instruments-Xetra/Downloads` | `xetra/downloads.html` |
//! | `GET /resource/blob/<n>/<hash>/data/<name>` | `xetra/<name>` |
//! | `GET /solr/esma_registers_firds_files/select?…fq=publication_date:[<D>T00:00:00Z TO …]&wt=xml\|json&start=S&rows=R` | `esma/solr-<D>.<wt>` (2025-01-06: at most 3 documents a page, `-page1` at start=0, `-page2` at start=3); a date without a file: an empty list |
//! | `GET /firds/<name>` | `esma/<name>` |
//!
//! The folder also holds a fifth delta day of the project's own, [`EXTRA_DAY`]
//! (`tests/data/publishers/EXTRA.md`). It is published only by a fake started
//! [`with_extra_day`](PublisherServer::with_extra_day); otherwise the fake is the shared fixtures'
//! week, whose list of that date is empty and whose file is not there.
//!
//! The files name the production hosts in their links: a source under test sets its files base
//! to [`PublisherServer::base`]. Knobs for failures: [`PublisherServer::serve_instead`] (another
//! body for a file, e.g. a page without the link), [`PublisherServer::remove`] (the file answers
//! 404), [`PublisherServer::add`] (a file at any path) and [`PublisherServer::requests`] (what
//! was asked, in order). Files are sent with an ETag and answer 304 to a matching If-None-Match;
//! GLEIF's API answers 406 to an Accept header that allows neither JSON nor `*/*`, as GLEIF does.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

/// The id GLEIF's listing gives the newest file, the only one whose download is served.
pub const GLEIF_NEWEST_ID: &str = "f3b0f9b6-286a-4d0f-9315-387704d3c1f1";
/// The newest GLEIF file.
pub const GLEIF_NEWEST_FILE: &str = "isin-lei-20250107T071509.zip";
/// The path of GLEIF's listing.
pub const GLEIF_LISTING_PATH: &str = "/api/v2/isin-lei";
/// The path of the Xetra downloads page.
pub const XETRA_PAGE_PATH: &str = "/cash-en/trading/Tradable-Instruments-Xetra/Downloads";
/// The path the Xetra page links the "All tradable instruments" CSV under.
pub const XETRA_CSV_PATH: &str =
    "/resource/blob/1528/7878c81ee889373a70ac503f9e62352b/data/t7-xetr-allTradableInstruments.csv";
/// The path of ESMA's FIRDS file list.
pub const ESMA_LIST_PATH: &str = "/solr/esma_registers_firds_files/select";
/// The publication date of the project's own delta day, after the shared fixtures' week.
pub const EXTRA_DAY: &str = "2025-01-09";
/// The one file of [`EXTRA_DAY`].
pub const EXTRA_DAY_FILE: &str = "DLTINS_20250109_01of01.zip";

/// The folder of the publishers' files.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/publishers")
}

/// The bytes of `file` (a name relative to [`data_dir`], e.g. `xetra/downloads.html`).
pub fn data(file: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(file)).unwrap_or_else(|e| panic!("tests/data/publishers/{file}: {e}"))
}

struct Knobs {
    /// The folder the files are served from.
    dir: PathBuf,
    /// Bodies served instead of a data file, by its relative name.
    instead: HashMap<String, Vec<u8>>,
    /// Data files that answer 404.
    removed: HashSet<String>,
    /// Extra files by request path.
    added: HashMap<String, Vec<u8>>,
    /// Every request's path and query, in order.
    requests: Vec<String>,
    /// Whether [`EXTRA_DAY`] is published.
    extra_day: bool,
}

/// The running fake; it stops with the test's runtime.
pub struct PublisherServer {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base: String,
    knobs: Arc<Mutex<Knobs>>,
}

impl PublisherServer {
    /// Starts the fake on a free port of 127.0.0.1, serving the project's copy of the files.
    pub fn start() -> Self {
        Self::start_in(data_dir())
    }

    /// Starts the fake serving the files of `dir` (laid out as `tests/data/publishers/`).
    pub fn start_in(dir: PathBuf) -> Self {
        let knobs = Arc::new(Mutex::new(Knobs {
            dir,
            instead: HashMap::new(),
            removed: HashSet::new(),
            added: HashMap::new(),
            requests: Vec::new(),
            extra_day: false,
        }));
        let shared = Arc::clone(&knobs);
        let server = HttpServer::new(move || {
            App::new().app_data(web::Data::new(Arc::clone(&shared))).default_service(web::to(answer))
        })
        .workers(2)
        .bind("127.0.0.1:0")
        .unwrap();
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        Self { base: format!("http://127.0.0.1:{port}"), knobs }
    }

    /// Publishes [`EXTRA_DAY`] too: its list and its file, after the fixtures' week.
    pub fn with_extra_day(self) -> Self {
        self.knobs.lock().unwrap().extra_day = true;
        self
    }

    /// The address of `path` on the fake.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Serves `body` for the data file `file` from now on.
    pub fn serve_instead(&self, file: &str, body: impl Into<Vec<u8>>) {
        let mut knobs = self.knobs.lock().unwrap();
        knobs.removed.remove(file);
        knobs.instead.insert(file.to_owned(), body.into());
    }

    /// Serves the data file `file` as it is again.
    pub fn restore(&self, file: &str) {
        let mut knobs = self.knobs.lock().unwrap();
        knobs.removed.remove(file);
        knobs.instead.remove(file);
    }

    /// Answers 404 for the data file `file` from now on.
    pub fn remove(&self, file: &str) {
        self.knobs.lock().unwrap().removed.insert(file.to_owned());
    }

    /// Serves `body` at `path` (no query).
    pub fn add(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.knobs.lock().unwrap().added.insert(path.to_owned(), body.into());
    }

    /// Every request so far, as path and query, in order.
    pub fn requests(&self) -> Vec<String> {
        self.knobs.lock().unwrap().requests.clone()
    }

    /// How many requests had a path starting with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.requests().iter().filter(|request| request.starts_with(prefix)).count()
    }
}

type Shared = web::Data<Arc<Mutex<Knobs>>>;

async fn answer(req: HttpRequest, knobs: Shared) -> HttpResponse {
    let path = req.path().to_owned();
    let query: HashMap<String, String> =
        web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
    let (added, published) = {
        let mut knobs = knobs.lock().unwrap();
        knobs
            .requests
            .push(req.uri().path_and_query().map_or_else(|| path.clone(), |pq| pq.as_str().to_owned()));
        (knobs.added.get(&path).cloned(), Published { dir: knobs.dir.clone(), extra_day: knobs.extra_day })
    };
    if let Some(body) = added {
        return file_response(&req, &path, Some(body));
    }
    let file = match route(&req, &path, &query, &published) {
        Routed::File(file) => file,
        Routed::Answer(response) => return response,
    };
    let body = {
        let knobs = knobs.lock().unwrap();
        if knobs.removed.contains(&file) {
            None
        } else {
            knobs.instead.get(&file).cloned().or_else(|| std::fs::read(knobs.dir.join(&file)).ok())
        }
    };
    file_response(&req, &file, body)
}

/// What the fake publishes: the files of a folder, with or without [`EXTRA_DAY`].
struct Published {
    dir: PathBuf,
    extra_day: bool,
}

impl Published {
    /// Whether the data file `file` (a name relative to the folder) is there to be served.
    fn has(&self, file: &str) -> bool {
        let of_extra_day =
            file == format!("esma/{EXTRA_DAY_FILE}") || file.starts_with(&format!("esma/solr-{EXTRA_DAY}"));
        (self.extra_day || !of_extra_day) && self.dir.join(file).is_file()
    }
}

/// Where a request leads.
enum Routed {
    /// A data file, by its relative name.
    File(String),
    /// An answer of its own (an error, an empty list).
    Answer(HttpResponse),
}

/// The data file a request asks for, or the answer when it is not one.
fn route(req: &HttpRequest, path: &str, query: &HashMap<String, String>, published: &Published) -> Routed {
    if path == GLEIF_LISTING_PATH || path.starts_with("/api/v2/isin-lei/") {
        let accept = req.headers().get("accept").and_then(|v| v.to_str().ok()).unwrap_or("*/*");
        if !accept.contains("*/*") && !accept.contains("json") {
            return Routed::Answer(HttpResponse::NotAcceptable().body("406 Not Acceptable"));
        }
    }
    if path == GLEIF_LISTING_PATH {
        if query.get("page[size]").is_some_and(|size| size != "3") {
            return Routed::Answer(
                HttpResponse::BadRequest().body("this fake pages GLEIF's listing by page[size]=3 only"),
            );
        }
        let number = query.get("page[number]").map_or("1", String::as_str);
        return Routed::File(format!("gleif/listing-page{number}.json"));
    }
    if path == "/api/v2/isin-lei/latest" {
        return Routed::File("gleif/latest.json".to_owned());
    }
    if let Some(id) = path.strip_prefix("/api/v2/isin-lei/").and_then(|rest| rest.strip_suffix("/download")) {
        return if id == GLEIF_NEWEST_ID {
            Routed::File(format!("gleif/{GLEIF_NEWEST_FILE}"))
        } else {
            Routed::Answer(HttpResponse::NotFound().body("only the newest GLEIF file is served"))
        };
    }
    if path == XETRA_PAGE_PATH {
        return Routed::File("xetra/downloads.html".to_owned());
    }
    if path.starts_with("/resource/blob/") {
        return Routed::File(format!("xetra/{}", path.rsplit('/').next().unwrap_or_default()));
    }
    if let Some(name) = path.strip_prefix("/firds/") {
        let file = format!("esma/{name}");
        return if name == EXTRA_DAY_FILE && !published.has(&file) {
            Routed::Answer(HttpResponse::NotFound().body(format!("{name} is published with_extra_day only")))
        } else {
            Routed::File(file)
        };
    }
    if path == ESMA_LIST_PATH {
        return esma_list(query, published);
    }
    Routed::Answer(HttpResponse::NotFound().body("the fake publishers have nothing here"))
}

/// The FIRDS file list's page for a query, or an empty list for a date it has no file for.
fn esma_list(query: &HashMap<String, String>, published: &Published) -> Routed {
    let fq = query.get("fq").map_or("", String::as_str);
    let Some(date) = fq.strip_prefix("publication_date:[").and_then(|rest| rest.get(..10)) else {
        return Routed::Answer(
            HttpResponse::BadRequest().body(format!("expected fq=publication_date:[…], got {fq:?}")),
        );
    };
    let wt = query.get("wt").map_or("xml", String::as_str);
    if !matches!(wt, "xml" | "json") {
        return Routed::Answer(HttpResponse::BadRequest().body(format!("wt={wt}: xml or json")));
    }
    let start = query.get("start").map_or("0", String::as_str);
    let paged = date == "2025-01-06";
    let file =
        match (paged, start) {
            (true, "0") => format!("esma/solr-{date}-page1.{wt}"),
            (true, "3") => format!("esma/solr-{date}-page2.{wt}"),
            (false, "0") => format!("esma/solr-{date}.{wt}"),
            _ => {
                return Routed::Answer(HttpResponse::BadRequest().body(format!(
                    "this fake serves {date} from start=0{}",
                    if paged { " and 3" } else { "" }
                )));
            }
        };
    if published.has(&file) { Routed::File(file) } else { Routed::Answer(empty_list(date, wt, start)) }
}

/// What Solr answers for a date without files.
fn empty_list(date: &str, wt: &str, start: &str) -> HttpResponse {
    let fq = format!("publication_date:[{date}T00:00:00Z TO {date}T23:59:59Z]");
    if wt == "json" {
        let body = serde_json::json!({
            "responseHeader": {"status": 0, "QTime": 0, "params": {"q": "*", "start": start, "fq": fq, "wt": "json"}},
            "response": {"numFound": 0, "start": 0, "numFoundExact": true, "docs": []}
        });
        HttpResponse::Ok().content_type("application/json").body(body.to_string())
    } else {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response>\n<lst name=\"responseHeader\"><int name=\"status\">0</int>\
             <lst name=\"params\"><str name=\"q\">*</str><str name=\"start\">{start}</str><str name=\"fq\">{fq}</str>\
             <str name=\"wt\">xml</str></lst></lst>\n<result name=\"response\" numFound=\"0\" start=\"0\" numFoundExact=\"true\">\n</result>\n</response>\n"
        );
        HttpResponse::Ok().content_type("application/xml").body(body)
    }
}

/// `body` as the file `name`, with an ETag (304 when the client has it), or 404 without one.
fn file_response(req: &HttpRequest, name: &str, body: Option<Vec<u8>>) -> HttpResponse {
    let Some(body) = body else {
        return HttpResponse::NotFound().body(format!("{name} is not here"));
    };
    let etag = format!("\"{:x}-{}\"", fingerprint(&body), body.len());
    if req.headers().get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return HttpResponse::NotModified().finish();
    }
    let content_type = match name.rsplit('.').next().unwrap_or_default() {
        "json" => "application/json",
        "xml" => "application/xml",
        "html" => "text/html; charset=utf-8",
        "csv" => "text/csv",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    };
    HttpResponse::Ok().content_type(content_type).insert_header(("ETag", etag)).body(body)
}

/// FNV-1a: enough to tell two bodies apart in an ETag.
fn fingerprint(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}
