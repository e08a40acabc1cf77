//! What every page's template needs besides its own data: the user, the CSRF token for its
//! forms, the flash messages, and which navigation entry is active.

use actix_session::Session;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;
use serde::{Deserialize, Serialize};

use crate::auth::{CurrentUser, csrf};
use crate::domain::Role;
use crate::web::AppError;

const FLASH_KEY: &str = "flash";

/// A message shown once, on the next page (after a redirect).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    /// `success`, `info` or `error`; also the CSS class.
    pub level: String,
    pub text: String,
}

/// Queues a success message for the next page.
pub fn flash_success(session: &Session, text: impl Into<String>) {
    push_flash(session, "success", text.into());
}

/// Queues a message saying why nothing was done, for the next page.
pub fn flash_error(session: &Session, text: impl Into<String>) {
    push_flash(session, "error", text.into());
}

fn push_flash(session: &Session, level: &str, text: String) {
    let mut queued: Vec<Flash> = session.get(FLASH_KEY).ok().flatten().unwrap_or_default();
    queued.push(Flash { level: level.to_owned(), text });
    // A Vec of plain structs always serialises.
    let _ = session.insert(FLASH_KEY, queued);
}

/// The queued messages, removed from the session. Only a session that has some is changed, so
/// an ordinary page view does not write the session row.
fn take_flashes(session: &Session) -> Vec<Flash> {
    match session.get::<Vec<Flash>>(FLASH_KEY) {
        Ok(Some(flashes)) => {
            session.remove(FLASH_KEY);
            flashes
        }
        _ => Vec::new(),
    }
}

/// The shared part of every page.
#[derive(Debug, Clone)]
pub struct Page {
    pub user: Option<CurrentUser>,
    pub csrf_token: String,
    pub flashes: Vec<Flash>,
    /// The navigation entry to mark as current.
    pub nav: &'static str,
}

impl Page {
    /// The context of a page shown to `user`; takes the queued flash messages.
    pub fn new(session: &Session, user: Option<&CurrentUser>, nav: &'static str) -> Self {
        Self { user: user.cloned(), csrf_token: csrf::token(session), flashes: take_flashes(session), nav }
    }

    /// A page without session (error pages).
    pub fn bare() -> Self {
        Self { user: None, csrf_token: String::new(), flashes: Vec::new(), nav: "" }
    }

    /// Whether the current user may change things (operators and admins).
    pub fn can_operate(&self) -> bool {
        self.user.as_ref().is_some_and(|user| user.can(Role::Operator))
    }

    /// Whether the current user is an admin (for showing admin-only navigation).
    pub fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|user| user.can(Role::Admin))
    }
}

/// Renders `template` with `status`.
pub fn render(status: StatusCode, template: &impl Template) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::build(status).content_type("text/html; charset=utf-8").body(template.render()?))
}

/// A 303 redirect (post/redirect/get).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((actix_web::http::header::LOCATION, location)).finish()
}
