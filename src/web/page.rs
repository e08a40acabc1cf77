//! What every page's template needs besides its own data: the user, the CSRF token for its
//! forms, the flash messages, and which navigation entry is active.

use actix_session::Session;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use askama::Template;
use serde::{Deserialize, Serialize};

use crate::auth::{CurrentUser, csrf};
use crate::domain::Role;
use crate::web::{AppError, AppState};

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

/// What an admin page's handler takes from the request besides its own path, query and form:
/// the request (the audit record's address), the app's state, the session (CSRF token, flash
/// messages) and the signed-in user that the login guard put on the request. A handler
/// destructures it in its signature, `AdminContext { req, state, session, me }: AdminContext`,
/// naming with `..` what it does not use.
pub struct AdminContext {
    pub req: HttpRequest,
    pub state: web::Data<AppState>,
    pub session: Session,
    pub me: CurrentUser,
}

impl FromRequest for AdminContext {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // Each part is actix's own extractor, ready at once, so a missing part fails as it did
        // when the handlers took the parts one by one (a 500: the app or the guard is miswired).
        let extracted = (|| {
            Ok(Self {
                req: req.clone(),
                state: web::Data::<AppState>::from_request(req, payload).into_inner()?,
                session: Session::from_request(req, payload).into_inner()?,
                me: web::ReqData::<CurrentUser>::from_request(req, payload).into_inner()?.into_inner(),
            })
        })();
        std::future::ready(extracted)
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
