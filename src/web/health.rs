//! `/healthz` (the process answers) and `/readyz` (the database answers and is migrated, and
//! the job queue answers), for load balancers and Kubernetes probes.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db;
use crate::web::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ok\n")
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.pool.clone();
    let database = web::block(move || -> anyhow::Result<Vec<String>> {
        let mut conn = pool.get()?;
        db::pending_migrations(&mut conn)
    });
    // Both at once: a probe waits for the slower, not for the two in turn.
    let (checked, queue) = tokio::join!(database, state.queue.check());
    let queue = match queue {
        Ok(()) => "ok",
        Err(error) => {
            tracing::warn!(
                error = format!("{error:#}"),
                queue = state.queue.describe(),
                "readiness check: queue unreachable"
            );
            "unreachable"
        }
    };
    let (ready, database, migrations) = match checked {
        Ok(Ok(pending)) if pending.is_empty() => (true, "ok".to_owned(), "applied".to_owned()),
        Ok(Ok(pending)) => (false, "ok".to_owned(), format!("pending: {}", pending.join(", "))),
        // The cause goes to the log, not to an anonymous caller: it names hosts and users.
        Ok(Err(error)) => {
            tracing::warn!(error = format!("{error:#}"), "readiness check: database unreachable");
            (false, "unreachable".to_owned(), "unknown".to_owned())
        }
        Err(error) => {
            tracing::warn!(error = error.to_string(), "readiness check failed");
            (false, "unknown".to_owned(), "unknown".to_owned())
        }
    };
    let ready = ready && queue == "ok";
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "database": database,
        "migrations": migrations,
        "queue": queue,
        "queue_backend": state.queue.describe(),
    });
    if ready { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}
