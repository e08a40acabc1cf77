//! Every route of the application, declared once. The table builds the actix `App` and tells
//! the access middleware who may call each route; tests iterate it, so a new route is covered
//! by the login and role tests without anyone remembering to add it.

use std::collections::HashMap;

use actix_web::http::Method;
use actix_web::{Route, web};

use crate::domain::Role;
use crate::web::{
    account, api, assets, audit, backfill, dashboard, health, isins, login, metrics, reconciliation,
    run_bulk, runs, schedules, sources, users, workers,
};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, and without touching the session (health checks, static files).
    Open,
    /// Anyone; the session is available (login, logout).
    Public,
    /// Logged-in users with at least this role.
    Role(Role),
    /// API requests whose token's user has at least this role (no session, no CSRF: the token
    /// travels in a header a browser never adds by itself).
    Token(Role),
}

/// Where the JSON API lives; its routes are `Access::Token`.
pub const API_PREFIX: &str = "/api/v1";

/// One route: method, path pattern, access and the handler it calls.
pub struct RouteDef {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    handler: fn(Route) -> Route,
}

impl RouteDef {
    /// The actix route for this definition.
    pub fn route(&self) -> Route {
        (self.handler)(web::method(self.method.clone()))
    }
}

fn get(path: &'static str, access: Access, handler: fn(Route) -> Route) -> RouteDef {
    RouteDef { method: Method::GET, path, access, handler }
}

fn post(path: &'static str, access: Access, handler: fn(Route) -> Route) -> RouteDef {
    RouteDef { method: Method::POST, path, access, handler }
}

const VIEWER: Access = Access::Role(Role::Viewer);
const OPERATOR: Access = Access::Role(Role::Operator);
const ADMIN: Access = Access::Role(Role::Admin);
const API_VIEWER: Access = Access::Token(Role::Viewer);
const API_OPERATOR: Access = Access::Token(Role::Operator);

/// The route table.
pub fn table() -> Vec<RouteDef> {
    vec![
        get("/healthz", Access::Open, |r| r.to(health::healthz)),
        get("/readyz", Access::Open, |r| r.to(health::readyz)),
        get("/metrics", Access::Open, |r| r.to(metrics::metrics)),
        get("/static/{file}", Access::Open, |r| r.to(assets::serve)),
        get("/api/v1/openapi.json", Access::Open, |r| r.to(api::openapi)),
        get("/api/v1/isins", API_VIEWER, |r| r.to(api::list_isins)),
        get("/api/v1/isins/{isin}", API_VIEWER, |r| r.to(api::get_isin)),
        get("/api/v1/schedules", API_VIEWER, |r| r.to(api::list_schedules)),
        post("/api/v1/schedules/{id}/run", API_OPERATOR, |r| r.to(api::run_schedule)),
        get("/api/v1/runs/{id}", API_VIEWER, |r| r.to(api::get_run)),
        get("/api/v1/changes", API_VIEWER, |r| r.to(api::list_changes)),
        get("/api/v1/reconciliation", API_VIEWER, |r| r.to(reconciliation::api_overview)),
        get("/api/v1/reconciliation/{rule}", API_VIEWER, |r| r.to(reconciliation::api_rule)),
        get("/", Access::Public, |r| r.to(dashboard::root)),
        get("/login", Access::Public, |r| r.to(login::form)),
        post("/login", Access::Public, |r| r.to(login::submit)),
        post("/logout", Access::Public, |r| r.to(login::logout)),
        get("/admin/", VIEWER, |r| r.to(dashboard::show)),
        get("/admin/account/", VIEWER, |r| r.to(account::show)),
        post("/admin/account/", VIEWER, |r| r.to(account::change_password)),
        post("/admin/account/tokens", VIEWER, |r| r.to(account::create_token)),
        post("/admin/account/tokens/{id}/revoke", VIEWER, |r| r.to(account::revoke_token)),
        get("/admin/audit/", VIEWER, |r| r.to(audit::list)),
        get("/admin/schedules/", VIEWER, |r| r.to(schedules::list)),
        post("/admin/schedules/bulk", OPERATOR, |r| r.to(schedules::bulk)),
        get("/admin/schedules/new", OPERATOR, |r| r.to(schedules::new_form)),
        post("/admin/schedules/new", OPERATOR, |r| r.to(schedules::create)),
        get("/admin/schedules/preview", OPERATOR, |r| r.to(schedules::preview)),
        get("/admin/schedules/{id}/", VIEWER, |r| r.to(schedules::detail)),
        get("/admin/schedules/{id}/edit", OPERATOR, |r| r.to(schedules::edit_form)),
        post("/admin/schedules/{id}/edit", OPERATOR, |r| r.to(schedules::update)),
        get("/admin/schedules/{id}/delete", OPERATOR, |r| r.to(schedules::delete_confirm)),
        post("/admin/schedules/{id}/delete", OPERATOR, |r| r.to(schedules::delete)),
        get("/admin/schedules/{id}/pause", OPERATOR, |r| r.to(schedules::pause_form)),
        post("/admin/schedules/{id}/pause", OPERATOR, |r| r.to(schedules::pause)),
        post("/admin/schedules/{id}/resume", OPERATOR, |r| r.to(schedules::resume)),
        post("/admin/schedules/{id}/run", OPERATOR, |r| r.to(schedules::run_now)),
        post("/admin/schedules/{id}/skips", OPERATOR, |r| r.to(schedules::skip)),
        post("/admin/schedules/{id}/skips/{skip_id}/delete", OPERATOR, |r| r.to(schedules::unskip)),
        get("/admin/sources/", VIEWER, |r| r.to(sources::list)),
        get("/admin/sources/new", OPERATOR, |r| r.to(sources::new_form)),
        post("/admin/sources/new", OPERATOR, |r| r.to(sources::create)),
        get("/admin/sources/{id}/", VIEWER, |r| r.to(sources::detail)),
        get("/admin/sources/{id}/edit", OPERATOR, |r| r.to(sources::edit_form)),
        post("/admin/sources/{id}/edit", OPERATOR, |r| r.to(sources::update)),
        get("/admin/sources/{id}/delete", OPERATOR, |r| r.to(sources::delete_confirm)),
        post("/admin/sources/{id}/delete", OPERATOR, |r| r.to(sources::delete)),
        post("/admin/sources/{id}/test", OPERATOR, |r| r.to(sources::test)),
        post("/admin/sources/{id}/import", OPERATOR, |r| r.to(sources::import_now)),
        get("/admin/sources/{id}/backfill/", OPERATOR, |r| r.to(backfill::form)),
        post("/admin/sources/{id}/backfill/", OPERATOR, |r| r.to(backfill::create)),
        get("/admin/isins/", VIEWER, |r| r.to(isins::list)),
        get("/admin/isins/export.csv", VIEWER, |r| r.to(isins::export_csv)),
        get("/admin/isins/export.jsonl", VIEWER, |r| r.to(isins::export_jsonl)),
        get("/admin/isins/{isin}/", VIEWER, |r| r.to(isins::detail)),
        get("/admin/reconciliation/", VIEWER, |r| r.to(reconciliation::show)),
        get("/admin/reconciliation/{rule}/", VIEWER, |r| r.to(reconciliation::rule)),
        get("/admin/reconciliation/{rule}/export.csv", VIEWER, |r| r.to(reconciliation::export_csv)),
        get("/admin/runs/", VIEWER, |r| r.to(runs::list)),
        post("/admin/runs/bulk", OPERATOR, |r| r.to(run_bulk::bulk)),
        get("/admin/runs/{id}/", VIEWER, |r| r.to(runs::detail)),
        post("/admin/runs/{id}/cancel", OPERATOR, |r| r.to(runs::cancel)),
        post("/admin/runs/{id}/retry", OPERATOR, |r| r.to(runs::retry)),
        post("/admin/runs/{id}/note", OPERATOR, |r| r.to(runs::note)),
        post("/admin/runs/{id}/publish", OPERATOR, |r| r.to(runs::publish_anyway)),
        post("/admin/runs/{id}/discard", OPERATOR, |r| r.to(runs::discard)),
        get("/admin/workers/", VIEWER, |r| r.to(workers::list)),
        get("/admin/users/", ADMIN, |r| r.to(users::list)),
        get("/admin/users/new", ADMIN, |r| r.to(users::new_form)),
        post("/admin/users/new", ADMIN, |r| r.to(users::create)),
        get("/admin/users/{id}/", ADMIN, |r| r.to(users::detail)),
        get("/admin/users/{id}/edit", ADMIN, |r| r.to(users::edit_form)),
        post("/admin/users/{id}/edit", ADMIN, |r| r.to(users::update)),
        get("/admin/users/{id}/password", ADMIN, |r| r.to(users::password_form)),
        post("/admin/users/{id}/password", ADMIN, |r| r.to(users::reset_password)),
        post("/admin/users/{id}/tokens/{token_id}/revoke", ADMIN, |r| r.to(users::revoke_token)),
    ]
}

/// Access by (path pattern, method), for the middleware.
#[derive(Debug, Clone, Default)]
pub struct AccessMap(HashMap<(String, Method), Access>);

impl AccessMap {
    pub fn from_table(table: &[RouteDef]) -> Self {
        Self(table.iter().map(|def| ((def.path.to_owned(), def.method.clone()), def.access)).collect())
    }

    /// The access a request needs. A path the table does not know needs a login when it is
    /// under `/admin/` (so that probing admin URLs tells an anonymous visitor nothing).
    pub fn required(&self, pattern: Option<&str>, path: &str, method: &Method) -> Access {
        let known = pattern.and_then(|pattern| {
            self.0
                .get(&(pattern.to_owned(), method.clone()))
                .or_else(|| self.0.get(&(pattern.to_owned(), Method::GET)))
        });
        match known {
            Some(access) => *access,
            None if path.starts_with("/admin") => VIEWER,
            None => Access::Public,
        }
    }
}

/// Routes of one path, in declaration order.
pub type PathGroup<'a> = (&'static str, Vec<&'a RouteDef>);

/// The table grouped by path in declaration order, in the three ways the application mounts
/// routes.
#[derive(Default)]
pub struct Groups<'a> {
    /// No session (health checks, static files, the API's description).
    pub open: Vec<PathGroup<'a>>,
    /// The JSON API: a token, no session.
    pub api: Vec<PathGroup<'a>>,
    /// Pages: the session, the login and CSRF checks.
    pub session: Vec<PathGroup<'a>>,
}

pub fn grouped(table: &[RouteDef]) -> Groups<'_> {
    let mut groups = Groups::default();
    for def in table {
        let group = match def.access {
            Access::Open => &mut groups.open,
            Access::Token(_) => &mut groups.api,
            Access::Public | Access::Role(_) => &mut groups.session,
        };
        match group.iter_mut().find(|(path, _)| *path == def.path) {
            Some((_, defs)) => defs.push(def),
            None => group.push((def.path, vec![def])),
        }
    }
    groups
}
