//! "My account": one's own details, password change and API tokens (every role may change
//! their own password and make tokens; they change nothing but their own credentials).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{NaiveDateTime, TimeDelta};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::auth::accounts::{self, PasswordChange};
use crate::auth::api_tokens;
use crate::auth::login::{LoginError, Throttle};
use crate::domain::ApiTokenId;
use crate::models::api_token::{self, ApiToken};
use crate::models::user::{self, User};
use crate::web::client_ip::{actor, client_ip};
use crate::web::forms::FormErrors;
use crate::web::login::authenticate_off_thread;
use crate::web::page::{AdminContext, Page, flash_success, render, see_other};
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
    /// What tells expired tokens apart (UTC).
    now: NaiveDateTime,
    /// Where a token's revoke form posts, up to the token's id.
    revoke_base: &'static str,
    token_errors: FormErrors,
    /// The new token form's values, kept when it is refused.
    token_name: String,
    token_expires_days: String,
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
            now: crate::db::now(),
            revoke_base: "/admin/account/tokens/",
            token_errors: FormErrors::default(),
            token_name: String::new(),
            token_expires_days: String::new(),
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
            Ok((user, api_token::of_user(conn, id)?))
        })
        .await
}

pub async fn show(AdminContext { state, session, me, .. }: AdminContext) -> Result<HttpResponse, AppError> {
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
    AdminContext { req, state, session, me }: AdminContext,
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
    /// Days until it expires; empty for never.
    #[serde(default)]
    expires_days: String,
}

/// A token's name and lifetime as typed, parsed; a message per bad field otherwise.
fn parse_token_form(form: &NewTokenForm, errors: &mut FormErrors) -> Option<(String, Option<TimeDelta>)> {
    let name = form.name.trim();
    if name.is_empty() {
        errors.add("token_name", "Give the token a name, such as the script that will use it.");
    } else if name.chars().count() > api_tokens::MAX_NAME {
        errors.add("token_name", format!("Use at most {} characters.", api_tokens::MAX_NAME));
    }
    let days = form.expires_days.trim();
    let lifetime = if days.is_empty() {
        Some(None)
    } else {
        match days.parse::<i64>() {
            Ok(days) if (1..=api_tokens::MAX_DAYS).contains(&days) => Some(Some(TimeDelta::days(days))),
            _ => {
                errors.add(
                    "expires_days",
                    format!(
                        "Enter a whole number of days from 1 to {}, or leave it empty for a token that \
                         never expires.",
                        api_tokens::MAX_DAYS
                    ),
                );
                None
            }
        }
    };
    lifetime.filter(|_| errors.is_empty()).map(|lifetime| (name.to_owned(), lifetime))
}

/// Makes an API token for oneself and shows its secret, once (this page is not a redirect:
/// the secret is never stored to be shown later).
pub async fn create_token(
    AdminContext { req, state, session, me }: AdminContext,
    form: web::Form<NewTokenForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let mut token_errors = FormErrors::default();
    let mut new_token = None;
    if let Some((name, lifetime)) = parse_token_form(&form, &mut token_errors) {
        let (actor, owner) = (actor(&req, &state.settings, &me), me.id);
        let expires_at = lifetime.map(|lifetime| crate::db::now() + lifetime);
        let token_name = name.clone();
        let (id, secret) = state
            .db(move |conn| Ok(api_tokens::create(conn, &actor, owner, &token_name, expires_at)?))
            .await?;
        tracing::info!(user = me.username.as_str(), token = id.0, "an API token was created");
        new_token = Some((name, secret));
    }
    let mut page = AccountPage::new(Page::new(&session, Some(&me), NAV), load_me(&state, &me).await?);
    let status = if new_token.is_some() {
        StatusCode::OK
    } else {
        page.token_name = form.name;
        page.token_expires_days = form.expires_days;
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page.token_errors = token_errors;
    page.new_token = new_token;
    render(status, &page)
}

/// Revokes one of one's own tokens.
pub async fn revoke_token(
    AdminContext { req, state, session, me }: AdminContext,
    id: web::Path<ApiTokenId>,
) -> Result<HttpResponse, AppError> {
    let (actor, owner, token_id) = (actor(&req, &state.settings, &me), me.id, id.into_inner());
    let revoked = state.db(move |conn| Ok(api_tokens::revoke(conn, &actor, owner, token_id)?)).await?;
    let Some(token) = revoked else { return Err(AppError::NotFound) };
    tracing::info!(user = me.username.as_str(), token = token.id.0, "an API token was revoked");
    flash_success(
        &session,
        format!("The token “{}” was revoked: requests with it are refused from now on.", token.name),
    );
    Ok(see_other("/admin/account/#api-tokens"))
}
