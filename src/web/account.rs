//! "My account": one's own details and password change (every role may change their own
//! password; it changes nothing but their own credentials).

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::auth::accounts::{self, PasswordChange};
use crate::auth::{CurrentUser, password};
use crate::models::user::{self, User};
use crate::web::client_ip::actor;
use crate::web::forms::FormErrors;
use crate::web::page::{Page, flash_success, render, see_other};
use crate::web::users::parse_new_password;
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
    state
        .db(move |conn| user::find(conn, id)?.ok_or(AppError::NotFound))
        .await
}

pub async fn show(
    state: web::Data<AppState>,
    session: Session,
    me: web::ReqData<CurrentUser>,
) -> Result<HttpResponse, AppError> {
    let user = load_me(&state, &me).await?;
    render(
        StatusCode::OK,
        &AccountPage {
            page: Page::new(&session, Some(&me), NAV),
            user,
            errors: FormErrors::default(),
        },
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
    let stored = user.password_hash.clone();
    let old = form.old_password;
    let old_ok = web::block(move || password::verify(&old, &stored))
        .await
        .map_err(AppError::internal)?;
    if !old_ok {
        errors.add("old_password", "Your old password was entered incorrectly.");
    }
    let new_password = parse_new_password(&form.password1, &form.password2, &user.username, &mut errors);
    if let (true, Some(new_password)) = (errors.is_empty(), new_password) {
        let actor = actor(&req, &state.settings, &me);
        let id = me.id;
        state
            .db(move |conn| {
                accounts::set_password(conn, &actor, id, &new_password, PasswordChange::Own)
                    .map_err(AppError::internal)
            })
            .await?;
        // Every session of this user was ended; this one continues under a new id.
        session.renew();
        flash_success(
            &session,
            "Your password was changed. Your other sessions were logged out.",
        );
        return Ok(see_other("/admin/account/"));
    }
    render(
        StatusCode::UNPROCESSABLE_ENTITY,
        &AccountPage {
            page: Page::new(&session, Some(&me), NAV),
            user,
            errors,
        },
    )
}
