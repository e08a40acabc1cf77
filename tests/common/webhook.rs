//! A webhook on 127.0.0.1 for the alert tests: it records every JSON body it is sent and
//! answers with the status it was given.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};

pub struct Webhook {
    pub url: String,
    received: Arc<Mutex<Vec<serde_json::Value>>>,
}

/// The client isinbeat delivers alerts with, allowed to call 127.0.0.1 (where the tests' webhooks
/// listen).
pub fn alert_client() -> isinbeat::sources::outbound::OutboundClient {
    use isinbeat::sources::outbound::{AllowRule, OutboundPolicy};
    let allowed = AllowRule::parse_list("127.0.0.1").unwrap();
    let policy = OutboundPolicy::new(allowed, std::collections::HashMap::new(), &[]).unwrap();
    isinbeat::alerts::http_client(&policy, Duration::from_secs(5)).unwrap()
}

/// A webhook answering 200.
pub fn webhook() -> Webhook {
    webhook_answering(200)
}

/// A webhook answering `status` to every call.
pub fn webhook_answering(status: u16) -> Webhook {
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let store = Arc::clone(&received);
    let server = HttpServer::new(move || {
        let store = Arc::clone(&store);
        App::new().route(
            "/hook",
            web::post().to(move |body: web::Json<serde_json::Value>| {
                let store = Arc::clone(&store);
                async move {
                    store.lock().unwrap().push(body.into_inner());
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).body("ok")
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    Webhook { url: format!("http://127.0.0.1:{port}/hook"), received }
}

impl Webhook {
    /// Every body received so far, in order.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.received.lock().unwrap().clone()
    }

    /// The `text` of every body received so far.
    pub fn texts(&self) -> Vec<String> {
        self.bodies().iter().map(|body| body["text"].as_str().unwrap().to_owned()).collect()
    }

    /// The alert kind and `text` of every body received so far.
    pub fn kinds_and_texts(&self) -> Vec<(String, String)> {
        self.bodies()
            .iter()
            .map(|body| {
                (
                    body["isinbeat"]["kind"].as_str().unwrap().to_owned(),
                    body["text"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// Waits until `count` bodies have come (at most `within`), and returns them.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + within;
        loop {
            let bodies = self.bodies();
            if bodies.len() >= count || Instant::now() > deadline {
                return bodies;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
