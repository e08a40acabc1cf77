//! "My account": one's own details and password change (every role may change their own
//! password; it changes nothing but their own credentials).

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::auth::accounts::{self, PasswordChange};
use crate::auth::api_tokens;
use crate::auth::login::{LoginError, Throttle};
use crate::models::api_token::{self, ApiToken};
use crate::models::user::{self, User};
use crate::web::client_ip::{actor, client_ip};
use crate::web::forms::FormErrors;
use crate::web::login::authenticate_off_thread;
use crate::web::page::{Page, flash_success, render, see_other};
use crate::web::users::{hash_off_thread, parse_new_password};
use crate::web::{AppError, AppState};

const NAV: &str = "account";

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    page: Page,
    user: User,
    errors: FormErrors,
    tokens: Vec<ApiToken>,
    token_errors: FormErrors,
    /// A token just made: its name and its secret, shown this once.
    new_token: Option<(String, String)>,
}

impl AccountPage {
    fn new(page: Page, (user, tokens): (User, Vec<ApiToken>)) -> Self {
        Self {
            page,
            user,
            errors: FormErrors::default(),
            tokens,
            token_errors: FormErrors::default(),
            new_token: None,
        }
    }
}

/// The user and their API tokens.
async fn load_me(state: &AppState, me: &CurrentUser) -> Result<(User, Vec<ApiToken>), AppError> {
    let id = me.id;
    state
        .db(move |conn| {
            let user = user::find(conn, id)?.ok_or(AppError::NotFound)?;
            Ok((user, api_token::of_user(conn, id.0)?))
        })
        .await
}

pub async fn show(
    state: web::Data<AppState>,
    session: Session,
    me: web::ReqData<CurrentUser>,
) -> Result<HttpResponse, AppError> {
    let loaded = load_me(&state, &me).await?;
    render(StatusCode::OK, &AccountPage::new(Page::new(&session, Some(&me), NAV), loaded))
}

#[derive(Deserialize)]
pub struct ChangePasswordForm {
    #[serde(default)]
    old_password: String,
    #[serde(default)]
    password1: String,
    #[serde(default)]
    password2: String,
}

pub async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    me: web::ReqData<CurrentUser>,
    form: web::Form<ChangePasswordForm>,
) -> Result<HttpResponse, AppError> {
    let (user, tokens) = load_me(&state, &me).await?;
    let form = form.into_inner();
    let mut errors = FormErrors::default();
    // The current password goes through the login throttle: a stolen session must not become
    // an unlimited password oracle.
    let ip = client_ip(&req, &state.settings);
    let throttle =
        Throttle { max_failures: state.settings.login_max_failures, window: state.settings.login_window };
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    match authenticate_off_thread(&state, throttle, user.username.clone(), form.old_password, ip).await? {
        Ok(_) => {}
        Err(LoginError::InvalidCredentials) => {
            errors.add("old_password", "Your old password was entered incorrectly.")
        }
        Err(refused @ LoginError::Throttled { .. }) => {
            status = StatusCode::TOO_MANY_REQUESTS;
            errors.add("old_password", refused);
        }
        Err(LoginError::Internal(error)) => return Err(AppError::Internal(error)),
    }
    let new_password = parse_new_password(&form.password1, &form.password2, &user.username, &mut errors);
    if let (true, Some(new_password)) = (errors.is_empty(), new_password) {
        let hash = hash_off_thread(new_password).await?;
        let actor = actor(&req, &state.settings, &me);
        let id = me.id;
        state
            .db(move |conn| {
                accounts::set_password(conn, &actor, id, &hash, PasswordChange::Own)
                    .map_err(AppError::internal)
            })
            .await?;
        // Every session of this user was ended; this one continues under a new id.
        session.renew();
        flash_success(&session, "Your password was changed. Your other sessions were logged out.");
        return Ok(see_other("/admin/account/"));
    }
    let mut page = AccountPage::new(Page::new(&session, Some(&me), NAV), (user, tokens));
    page.errors = errors;
    render(status, &page)
}

#[derive(Deserialize)]
pub struct NewTokenForm {
    #[serde(default)]
    name: String,
}

/// Makes an API token for oneself and shows its secret, once (this page is not a redirect:
/// the secret is never stored to be shown later).
pub async fn create_token(
    state: web::Data<AppState>,
    session: Session,
    me: web::ReqData<CurrentUser>,
    form: web::Form<NewTokenForm>,
) -> Result<HttpResponse, AppError> {
    let name = form.into_inner().name.trim().to_owned();
    let mut token_errors = FormErrors::default();
    if name.is_empty() {
        token_errors.add("token_name", "Give the token a name, such as the script that will use it.");
    } else if name.chars().count() > api_tokens::MAX_NAME {
        token_errors.add("token_name", format!("Use at most {} characters.", api_tokens::MAX_NAME));
    }
    let mut new_token = None;
    if token_errors.is_empty() {
        let id = me.id;
        let token_name = name.clone();
        let (_, secret) = state.db(move |conn| Ok(api_tokens::create(conn, id, &token_name)?)).await?;
        tracing::info!(user = %me.username, token = %name, "an API token was created");
        new_token = Some((name, secret));
    }
    let status = if token_errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let mut page = AccountPage::new(Page::new(&session, Some(&me), NAV), load_me(&state, &me).await?);
    page.token_errors = token_errors;
    page.new_token = new_token;
    render(status, &page)
}

/// Revokes one of one's own tokens.
pub async fn revoke_token(
    state: web::Data<AppState>,
    session: Session,
    me: web::ReqData<CurrentUser>,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let (user_id, token_id) = (me.id.0, id.into_inner());
    let revoked = state
        .db(move |conn| Ok(api_token::revoke(conn, user_id, token_id, chrono::Utc::now().naive_utc())?))
        .await?;
    if revoked == 0 {
        return Err(AppError::NotFound);
    }
    flash_success(&session, "The token was revoked: requests with it are refused from now on.");
    Ok(see_other("/admin/account/"))
}
