//! The FIRDS file list over HTTP: a local server answering like ESMA's Solr list from the
//! fixture pages (three documents per page for 2025-01-06), read through the outbound policy in
//! XML and JSON, planned into the README's apply order, and a second list address used when
//! the first fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::NaiveDate;
use isinbeat::sources::esma_firds::{
    Applied, DayList, DayLister, HttpLister, ListError, ListFormat, ListSettings, Plan, plan,
};
use isinbeat::sources::fetch::Limits;
use isinbeat::sources::outbound::{AllowRule, OutboundPolicy};

/// What the server was asked: the list's name in the path, the query, and the Accept header.
#[derive(Debug, Clone)]
struct Asked {
    list: String,
    query: HashMap<String, String>,
    accept: String,
}

struct Publisher {
    port: u16,
    asked: Arc<Mutex<Vec<Asked>>>,
}

impl Publisher {
    fn url(&self, path: &str) -> url::Url {
        url::Url::parse(&format!("http://127.0.0.1:{}/{path}", self.port)).unwrap()
    }

    fn asked(&self) -> Vec<Asked> {
        std::mem::take(&mut *self.asked.lock().unwrap())
    }
}

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/publishers/esma").join(name);
    std::fs::read_to_string(path).unwrap()
}

/// `/<list>/select` answers from the fixtures: `esma` as the publisher does, `down` with 503,
/// `changing` with a second page of 2025-01-06 whose numFound has grown.
async fn select(request: HttpRequest, asked: web::Data<Mutex<Vec<Asked>>>) -> HttpResponse {
    let list = request.match_info().get("list").unwrap_or_default().to_owned();
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(request.query_string().as_bytes()).into_owned().collect();
    let accept = request.headers().get("accept").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    asked.lock().unwrap().push(Asked { list: list.clone(), query: query.clone(), accept });
    if list == "down" {
        return HttpResponse::ServiceUnavailable().body("maintenance");
    }
    let fq = query.get("fq").cloned().unwrap_or_default();
    let Some(day) = fq.strip_prefix("publication_date:[").and_then(|rest| rest.get(..10)) else {
        return HttpResponse::BadRequest().body("no fq");
    };
    let wt = query.get("wt").cloned().unwrap_or_default();
    let page = match (day, query.get("start").map(String::as_str)) {
        ("2025-01-06", Some("0")) => "-page1",
        ("2025-01-06", Some("3")) => "-page2",
        ("2025-01-06", _) => return HttpResponse::BadRequest().body("no such page"),
        _ => "",
    };
    let name = format!("solr-{day}{page}.{wt}");
    if !std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/publishers/esma")
        .join(&name)
        .exists()
    {
        let empty = if wt == "json" {
            r#"{"response":{"numFound":0,"start":0,"docs":[]}}"#.to_owned()
        } else {
            r#"<response><result name="response" numFound="0" start="0"></result></response>"#.to_owned()
        };
        return HttpResponse::Ok().body(empty);
    }
    let mut body = fixture(&name);
    if list == "changing" && page == "-page2" {
        body = body.replace("numFound=\"4\"", "numFound=\"5\"").replace("\"numFound\": 4", "\"numFound\": 5");
    }
    HttpResponse::Ok().body(body)
}

async fn publisher() -> Publisher {
    let asked = web::Data::new(Mutex::new(Vec::new()));
    let shared = asked.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new().app_data(shared.clone()).route("/{list}/select", web::get().to(select))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    Publisher { port, asked: asked.into_inner() }
}

fn http_lister(settings: ListSettings) -> HttpLister {
    let policy =
        OutboundPolicy::new(AllowRule::parse_list("127.0.0.1").unwrap(), HashMap::new(), &[]).unwrap();
    let limits = Limits {
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    HttpLister::new(settings, policy, limits)
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// Plans from nothing up to `target` with the blocking lister, off the server's runtime.
async fn plan_over_http(lister: HttpLister, target: &str) -> Plan {
    let target = date(target);
    tokio::task::spawn_blocking(move || plan(&Applied::default(), target, &[], &lister, 14).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_fixture_week_is_listed_over_http_in_xml_and_json_and_planned_in_the_readmes_order() {
    let server = publisher().await;
    for format in [ListFormat::Xml, ListFormat::Json] {
        let mut settings = ListSettings::new(server.url("esma/select"));
        settings.format = format;
        settings.files_base = Some(server.url(""));
        let plan = plan_over_http(http_lister(settings), "2025-01-08").await;
        let order: Vec<&str> =
            plan.units.iter().flat_map(|unit| &unit.files).map(|file| file.name.as_str()).collect();
        assert_eq!(
            order,
            [
                "FULINS_D_20250104_01of01.zip",
                "FULINS_E_20250104_01of02.zip",
                "FULINS_E_20250104_02of02.zip",
                "DLTINS_20250105_01of01.zip",
                "DLTINS_20250106_01of03.zip",
                "DLTINS_20250106_02of03.zip",
                "DLTINS_20250106_03of03.zip",
                "FULCAN_20250106_01of01.zip",
                "DLTINS_20250107_01of01.zip",
                "DLTINS_20250108_01of01.zip",
            ],
            "{format:?}"
        );
        assert_eq!(plan.then, None);
        let first = &plan.units[0].files[0];
        assert_eq!(
            first.url,
            server.url("firds/FULINS_D_20250104_01of01.zip"),
            "links moved onto the files base"
        );

        let asked = server.asked();
        let pages: Vec<(String, String)> =
            asked.iter().map(|asked| (asked.query["fq"].clone(), asked.query["start"].clone())).collect();
        let mut expected: Vec<(String, String)> = ["08", "07", "06", "05", "04"]
            .iter()
            .map(|day| {
                (
                    format!("publication_date:[2025-01-{day}T00:00:00Z TO 2025-01-{day}T23:59:59Z]"),
                    "0".to_owned(),
                )
            })
            .collect();
        expected.insert(3, (expected[2].0.clone(), "3".to_owned()));
        assert_eq!(pages, expected, "each day asked once, 2025-01-06 on two pages");
        for asked in asked {
            assert_eq!(asked.query["q"], "*");
            assert_eq!(asked.query["wt"], format.as_str());
            assert_eq!(asked.query["indent"], "true");
            assert_eq!(asked.query["rows"], "100");
            assert_eq!(asked.accept, "*/*");
        }
    }
}

#[tokio::test]
async fn a_list_that_changes_while_it_is_read_fails_the_day() {
    let server = publisher().await;
    let lister = http_lister(ListSettings::new(server.url("changing/select")));
    let error = lister.list_day_async(date("2025-01-06")).await.unwrap_err();
    assert_eq!(error, ListError::Changed { date: date("2025-01-06"), first: 4, then: 5 });
}

#[tokio::test]
async fn when_the_first_list_fails_the_second_is_asked_and_then_asked_first() {
    let server = publisher().await;
    let mut settings = ListSettings::new(server.url("down/select"));
    settings.second_list_url = Some(server.url("esma/select"));
    let lister = http_lister(settings);
    let list = lister.list_day_async(date("2025-01-05")).await.unwrap();
    assert_eq!(list.files[0].name, "DLTINS_20250105_01of01.zip");
    let lists: Vec<String> = server.asked().into_iter().map(|asked| asked.list).collect();
    assert_eq!(lists, ["down", "esma"]);
    lister.list_day_async(date("2025-01-07")).await.unwrap();
    let lists: Vec<String> = server.asked().into_iter().map(|asked| asked.list).collect();
    assert_eq!(lists, ["esma"], "the address that answered is asked first for the next day");

    let mut settings = ListSettings::new(server.url("down/select"));
    settings.second_list_url = Some(server.url("down/select?mirror=1"));
    let both = list_day_blocking(http_lister(settings), "2025-01-05").await.unwrap_err().to_string();
    assert!(
        both.starts_with(&format!(
            "FIRDS list of 2025-01-05: http://127.0.0.1:{}/down/select: HTTP 503",
            server.port
        )),
        "{both}"
    );
    assert!(both.contains("; the second list address failed too: "), "{both}");
}

/// [`DayLister::list_day`], the blocking way the planner asks, off the server's runtime.
async fn list_day_blocking(lister: HttpLister, day: &str) -> Result<DayList, ListError> {
    let day = date(day);
    tokio::task::spawn_blocking(move || lister.list_day(day)).await.unwrap()
}

#[tokio::test]
async fn a_list_address_outside_the_outbound_policy_is_refused() {
    let server = publisher().await;
    let refusing = HttpLister::new(
        ListSettings::new(server.url("esma/select")),
        OutboundPolicy::default(),
        Limits::default(),
    );
    let error = refusing.list_day_async(date("2025-01-05")).await.unwrap_err().to_string();
    assert!(error.contains("refused"), "{error}");
    assert!(server.asked().is_empty());
}
