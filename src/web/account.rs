//! "My account": one's own details and password change (every role may change their own
//! password; it changes nothing but their own credentials).

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::auth::accounts::{self, PasswordChange};
use crate::auth::login::{LoginError, Throttle};
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
}

async fn load_me(state: &AppState, me: &CurrentUser) -> Result<User, AppError> {
    let id = me.id;
    state.db(move |conn| user::find(conn, id)?.ok_or(AppError::NotFound)).await
}

pub async fn show(
    state: web::Data<AppState>,
    session: Session,
    me: web::ReqData<CurrentUser>,
) -> Result<HttpResponse, AppError> {
    let user = load_me(&state, &me).await?;
    render(
        StatusCode::OK,
        &AccountPage { page: Page::new(&session, Some(&me), NAV), user, errors: FormErrors::default() },
    )
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
    let user = load_me(&state, &me).await?;
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
    render(status, &AccountPage { page: Page::new(&session, Some(&me), NAV), user, errors })
}
