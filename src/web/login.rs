//! The login form, login and logout.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::auth::login::{LoginError, Throttle, authenticate};
use crate::auth::session_store::USER_ID_KEY;
use crate::auth::{CurrentUser, csrf};
use crate::models::user::User;
use crate::web::client_ip::client_ip;
use crate::web::forms::safe_next;
use crate::web::page::{Page, render, see_other};
use crate::web::{AppError, AppState};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: Page,
    username: String,
    next: String,
    error: Option<String>,
    logged_out: bool,
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    logged_out: Option<String>,
}

pub async fn form(
    session: Session,
    user: Option<web::ReqData<CurrentUser>>,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, AppError> {
    let next = safe_next(query.next.as_deref());
    if user.is_some() {
        return Ok(see_other(&next));
    }
    render(
        StatusCode::OK,
        &LoginPage {
            page: Page::new(&session, None, "login"),
            username: String::new(),
            next,
            error: None,
            logged_out: query.logged_out.is_some(),
        },
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, AppError> {
    let LoginForm { username, password, next } = form.into_inner();
    let next = safe_next(next.as_deref());
    let ip = client_ip(&req, &state.settings);
    let throttle =
        Throttle { max_failures: state.settings.login_max_failures, window: state.settings.login_window };
    let outcome = authenticate_off_thread(&state, throttle, username.clone(), password, ip).await?;
    match outcome {
        Ok(user) => {
            let id = user.id;
            state.db(move |conn| Ok(crate::models::user::record_login(conn, id)?)).await?;
            // A new session id at login, so an id planted before login is worthless after it.
            session.renew();
            session
                .insert(USER_ID_KEY, user.id)
                .map_err(|e| AppError::internal(anyhow::anyhow!("Failed to store the session: {e}")))?;
            csrf::rotate(&session);
            tracing::info!(user = user.username.as_str(), "logged in");
            Ok(see_other(&next))
        }
        Err(LoginError::Internal(error)) => Err(AppError::Internal(error)),
        Err(refusal) => {
            let status = match refusal {
                LoginError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            render(
                status,
                &LoginPage {
                    page: Page::new(&session, None, "login"),
                    username,
                    next,
                    error: Some(refusal.to_string()),
                    logged_out: false,
                },
            )
        }
    }
}

/// Runs [`authenticate`] on the blocking pool; the outer error is a failure to run it at all.
pub(super) async fn authenticate_off_thread(
    state: &AppState,
    throttle: Throttle,
    username: String,
    password: String,
    ip: String,
) -> Result<Result<User, LoginError>, AppError> {
    let pool = state.pool.clone();
    web::block(move || authenticate(&pool, throttle, &username, &password, &ip))
        .await
        .map_err(AppError::internal)
}

pub async fn logout(session: Session) -> HttpResponse {
    // Deletes the session row: the old cookie no longer logs anyone in.
    session.purge();
    see_other("/login?logged_out=1")
}
