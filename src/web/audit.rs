//! The audit log page: every change any user made, newest first, with filters.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::domain::AuditEntryId;
use crate::models::audit::{self, AuditEntry, AuditFilter};
use crate::web::AppError;
use crate::web::forms::filter_query;
use crate::web::page::{AdminContext, Page, render};

const PAGE_SIZE: i64 = 50;

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    page: Page,
    entries: Vec<AuditEntry>,
    show_ip: bool,
    actor: String,
    object_type: String,
    /// Query string for the next (older) page, if there is one.
    older: Option<String>,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    actor: Option<String>,
    object_type: Option<String>,
    before: Option<AuditEntryId>,
}

pub async fn list(
    AdminContext { state, session, me, .. }: AdminContext,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, AppError> {
    let query = query.into_inner();
    let non_empty = |value: Option<String>| value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let filter = AuditFilter {
        actor: non_empty(query.actor),
        object_type: non_empty(query.object_type),
        object_id: None,
    };
    let before = query.before;
    let lookup = filter.clone();
    let mut entries = state.db(move |conn| Ok(audit::page(conn, &lookup, before, PAGE_SIZE + 1)?)).await?;
    let has_more = entries.len() > PAGE_SIZE as usize;
    entries.truncate(PAGE_SIZE as usize);
    let older = match (has_more, entries.last()) {
        (true, Some(last)) => {
            let mut params = filter_query([
                ("actor", filter.actor.as_deref().unwrap_or_default()),
                ("object_type", filter.object_type.as_deref().unwrap_or_default()),
            ]);
            params.append_pair("before", &last.id.to_string());
            Some(params.finish())
        }
        _ => None,
    };
    render(
        StatusCode::OK,
        &AuditPage {
            show_ip: me.can(crate::domain::Role::Admin),
            page: Page::new(&session, Some(&me), "audit"),
            entries,
            actor: filter.actor.unwrap_or_default(),
            object_type: filter.object_type.unwrap_or_default(),
            older,
        },
    )
}
