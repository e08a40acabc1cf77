//! The users admin (admin role): list, create, change role and active flag, reset password,
//! and see and revoke a user's API tokens.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDateTime;
use serde::Deserialize;

use crate::auth::accounts::{self, AccountError, PasswordChange};
use crate::auth::api_tokens;
use crate::auth::password::HashedPassword;
use crate::domain::{ApiTokenId, NewPassword, Role, UserId, Username};
use crate::models::api_token::{self, ApiToken};
use crate::models::audit::{self, AuditEntry, AuditFilter};
use crate::models::session;
use crate::models::user::{self, User};
use crate::web::client_ip::actor;
use crate::web::forms::FormErrors;
use crate::web::page::{AdminContext, Page, flash_success, render, see_other};
use crate::web::{AppError, AppState};

const NAV: &str = "users";

#[derive(Template)]
#[template(path = "users/list.html")]
struct ListPage {
    page: Page,
    users: Vec<User>,
}

pub async fn list(AdminContext { state, session, me, .. }: AdminContext) -> Result<HttpResponse, AppError> {
    let users = state.db(|conn| Ok(user::list(conn)?)).await?;
    render(StatusCode::OK, &ListPage { page: Page::new(&session, Some(&me), NAV), users })
}

#[derive(Template)]
#[template(path = "users/new.html")]
struct NewPage {
    page: Page,
    username: String,
    role: String,
    roles: [Role; 3],
    errors: FormErrors,
}

pub async fn new_form(AdminContext { session, me, .. }: AdminContext) -> Result<HttpResponse, AppError> {
    render(
        StatusCode::OK,
        &NewPage {
            page: Page::new(&session, Some(&me), NAV),
            username: String::new(),
            role: Role::Viewer.as_str().to_owned(),
            roles: Role::ALL,
            errors: FormErrors::default(),
        },
    )
}

#[derive(Deserialize)]
pub struct NewUserForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password1: String,
    #[serde(default)]
    password2: String,
}

/// The two password fields of a form, checked against the policy for `username`.
pub(super) fn parse_new_password(
    password1: &str,
    password2: &str,
    username: &str,
    errors: &mut FormErrors,
) -> Option<NewPassword> {
    match NewPassword::parse(password1, username) {
        Err(reason) => {
            errors.add("password1", reason);
            None
        }
        Ok(_) if password1 != password2 => {
            errors.add("password2", "The two password fields didn’t match.");
            None
        }
        Ok(password) => Some(password),
    }
}

/// Hashes a new password on the blocking pool, before any connection is taken.
pub(super) async fn hash_off_thread(password: NewPassword) -> Result<HashedPassword, AppError> {
    web::block(move || HashedPassword::new(&password))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)
}

pub async fn create(
    AdminContext { req, state, session, me }: AdminContext,
    form: web::Form<NewUserForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let mut errors = FormErrors::default();
    let username = Username::parse(&form.username).map_err(|e| errors.add("username", e)).ok();
    let role = form.role.parse::<Role>().map_err(|_| errors.add("role", "Choose a role.")).ok();
    let password = parse_new_password(&form.password1, &form.password2, form.username.trim(), &mut errors);

    if let (Some(username), Some(role), Some(password)) = (username, role, password) {
        let hash = hash_off_thread(password).await?;
        let actor = actor(&req, &state.settings, &me);
        let created =
            state.db(move |conn| Ok(accounts::create_user(conn, &actor, &username, &hash, role))).await?;
        match created {
            Ok(created) => {
                flash_success(&session, format!("User “{}” was created.", created.username));
                return Ok(see_other(&format!("/admin/users/{}/", created.id)));
            }
            Err(AccountError::DuplicateUsername) => errors.add("username", AccountError::DuplicateUsername),
            Err(other) => return Err(AppError::internal(other)),
        }
    }
    render(
        StatusCode::UNPROCESSABLE_ENTITY,
        &NewPage {
            page: Page::new(&session, Some(&me), NAV),
            username: form.username,
            role: form.role,
            roles: Role::ALL,
            errors,
        },
    )
}

#[derive(Template)]
#[template(path = "users/detail.html")]
struct DetailPage {
    page: Page,
    user: User,
    sessions: i64,
    tokens: Vec<ApiToken>,
    /// What tells expired tokens apart (UTC).
    now: NaiveDateTime,
    /// Where a token's revoke form posts, up to the token's id.
    revoke_base: String,
    entries: Vec<AuditEntry>,
    show_ip: bool,
}

async fn load_user(state: &AppState, id: UserId) -> Result<User, AppError> {
    state.find_or_404(id, user::find).await
}

pub async fn detail(
    AdminContext { state, session, me, .. }: AdminContext,
    id: web::Path<UserId>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let (found, sessions, tokens, entries) = state
        .db(move |conn| {
            let found = user::find(conn, id)?.ok_or(AppError::NotFound)?;
            let sessions = session::count_active_for_user(conn, id, crate::db::now())?;
            let tokens = api_token::of_user(conn, id)?;
            let filter = AuditFilter {
                object_type: Some("user".to_owned()),
                object_id: Some(id.to_string()),
                ..AuditFilter::default()
            };
            Ok((found, sessions, tokens, audit::page(conn, &filter, None, 50)?))
        })
        .await?;
    render(
        StatusCode::OK,
        &DetailPage {
            page: Page::new(&session, Some(&me), NAV),
            revoke_base: format!("/admin/users/{id}/tokens/"),
            user: found,
            sessions,
            tokens,
            now: crate::db::now(),
            entries,
            show_ip: true,
        },
    )
}

/// Revokes one of a user's API tokens (an admin stopping a script, or a leaked token).
pub async fn revoke_token(
    AdminContext { req, state, session, me }: AdminContext,
    path: web::Path<(UserId, ApiTokenId)>,
) -> Result<HttpResponse, AppError> {
    let (owner, token_id) = path.into_inner();
    let actor = actor(&req, &state.settings, &me);
    let revoked = state.db(move |conn| Ok(api_tokens::revoke(conn, &actor, owner, token_id)?)).await?;
    let Some(token) = revoked else { return Err(AppError::NotFound) };
    tracing::info!(
        user = me.username.as_str(),
        owner = owner.0,
        token = token.id.0,
        "an API token was revoked"
    );
    flash_success(
        &session,
        format!("The token “{}” was revoked: requests with it are refused from now on.", token.name),
    );
    Ok(see_other(&format!("/admin/users/{owner}/#api-tokens")))
}

/// What a flash adds when a change revoked API tokens.
fn tokens_revoked_note(count: usize) -> String {
    match count {
        0 => String::new(),
        1 => " Their API token was revoked.".to_owned(),
        n => format!(" Their {n} API tokens were revoked."),
    }
}

#[derive(Template)]
#[template(path = "users/edit.html")]
struct EditPage {
    page: Page,
    user: User,
    role: String,
    is_active: bool,
    roles: [Role; 3],
    errors: FormErrors,
}

pub async fn edit_form(
    AdminContext { state, session, me, .. }: AdminContext,
    id: web::Path<UserId>,
) -> Result<HttpResponse, AppError> {
    let found = load_user(&state, id.into_inner()).await?;
    render(
        StatusCode::OK,
        &EditPage {
            page: Page::new(&session, Some(&me), NAV),
            role: found.role.as_str().to_owned(),
            is_active: found.is_active,
            user: found,
            roles: Role::ALL,
            errors: FormErrors::default(),
        },
    )
}

#[derive(Deserialize)]
pub struct EditUserForm {
    #[serde(default)]
    role: String,
    /// A checkbox: present when ticked.
    is_active: Option<String>,
}

pub async fn update(
    AdminContext { req, state, session, me }: AdminContext,
    id: web::Path<UserId>,
    form: web::Form<EditUserForm>,
) -> Result<HttpResponse, AppError> {
    let found = load_user(&state, id.into_inner()).await?;
    let form = form.into_inner();
    let is_active = form.is_active.is_some();
    let mut errors = FormErrors::default();
    if let Ok(role) = form.role.parse::<Role>() {
        let actor = actor(&req, &state.settings, &me);
        let target = found.id;
        let updated =
            state.db(move |conn| Ok(accounts::update_user(conn, &actor, target, role, is_active))).await?;
        match updated {
            Ok(updated) => {
                flash_success(
                    &session,
                    format!(
                        "User “{}” was saved.{}",
                        updated.user.username,
                        tokens_revoked_note(updated.tokens_revoked)
                    ),
                );
                return Ok(see_other(&format!("/admin/users/{}/", updated.user.id)));
            }
            Err(AccountError::LastAdmin) => errors.add("__all__", AccountError::LastAdmin),
            Err(AccountError::NotFound) => return Err(AppError::NotFound),
            Err(other) => return Err(AppError::internal(other)),
        }
    } else {
        errors.add("role", "Choose a role.");
    }
    render(
        StatusCode::UNPROCESSABLE_ENTITY,
        &EditPage {
            page: Page::new(&session, Some(&me), NAV),
            user: found,
            role: form.role,
            is_active,
            roles: Role::ALL,
            errors,
        },
    )
}

#[derive(Template)]
#[template(path = "users/password.html")]
struct PasswordPage {
    page: Page,
    user: User,
    errors: FormErrors,
}

pub async fn password_form(
    AdminContext { state, session, me, .. }: AdminContext,
    id: web::Path<UserId>,
) -> Result<HttpResponse, AppError> {
    let found = load_user(&state, id.into_inner()).await?;
    render(
        StatusCode::OK,
        &PasswordPage {
            page: Page::new(&session, Some(&me), NAV),
            user: found,
            errors: FormErrors::default(),
        },
    )
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    password1: String,
    #[serde(default)]
    password2: String,
}

pub async fn reset_password(
    AdminContext { req, state, session, me }: AdminContext,
    id: web::Path<UserId>,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, AppError> {
    let found = load_user(&state, id.into_inner()).await?;
    let mut errors = FormErrors::default();
    if let Some(password) = parse_new_password(&form.password1, &form.password2, &found.username, &mut errors)
    {
        let hash = hash_off_thread(password).await?;
        let actor = actor(&req, &state.settings, &me);
        let target = found.id;
        let tokens_revoked = state
            .db(move |conn| {
                accounts::set_password(conn, &actor, target, &hash, PasswordChange::Reset)
                    .map_err(AppError::internal)
            })
            .await?;
        if target == me.id {
            // Resetting one's own password ends one's own sessions too; stay logged in here.
            session.renew();
        }
        flash_success(
            &session,
            format!(
                "The password of “{}” was changed and their sessions were ended.{}",
                found.username,
                tokens_revoked_note(tokens_revoked)
            ),
        );
        return Ok(see_other(&format!("/admin/users/{}/", found.id)));
    }
    render(
        StatusCode::UNPROCESSABLE_ENTITY,
        &PasswordPage { page: Page::new(&session, Some(&me), NAV), user: found, errors },
    )
}
