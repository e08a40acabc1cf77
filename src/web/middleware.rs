//! The middleware that enforces the route table: `access` loads the logged-in user and checks
//! the route's role (anonymous visitors go to the login page); `csrf` refuses unsafe requests
//! without the session's token; `security_headers` sets the headers every response carries.

use actix_session::SessionExt;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{Error, HttpMessage, ResponseError, web};

use crate::auth::api_tokens::{self, AuthFailure};
use crate::auth::session_store::USER_ID_KEY;
use crate::auth::{self, csrf};
use crate::domain::UserId;
use crate::web::api::ApiError;
use crate::web::page::see_other;
use crate::web::routes::{Access, AccessMap};
use crate::web::{AppError, AppState};

/// Loads the session's user into the request extensions and enforces the route's access.
pub async fn access(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(AppError::internal(anyhow::anyhow!("AppState is not registered")).into());
    };
    let session = req.get_session();
    if let Ok(Some(id)) = session.get::<UserId>(USER_ID_KEY) {
        let user = state.db(move |conn| Ok(auth::load_current_user(conn, id)?)).await?;
        match user {
            Some(user) => {
                req.extensions_mut().insert(user);
            }
            // The user was deactivated or deleted: the session goes on as an anonymous one.
            None => {
                session.remove(USER_ID_KEY);
            }
        }
    }

    let required = match req.app_data::<web::Data<AccessMap>>() {
        Some(map) => map.required(req.match_pattern().as_deref(), req.path(), req.method()),
        None => return Err(AppError::internal(anyhow::anyhow!("AccessMap is not registered")).into()),
    };
    if let Access::Role(role) = required {
        let allowed = req.extensions().get::<auth::CurrentUser>().map(|user| user.can(role));
        match allowed {
            None => {
                let location = login_redirect(&req);
                return Ok(req.into_response(see_other(&location)).map_into_right_body());
            }
            Some(false) => {
                let response = AppError::Forbidden.error_response();
                return Ok(req.into_response(response).map_into_right_body());
            }
            Some(true) => {}
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Checks an API request's bearer token and the route's role; the token's user goes into the
/// request extensions. Refusals are JSON: 401 without a valid token, 403 for too small a role.
pub async fn api_access(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(AppError::internal(anyhow::anyhow!("AppState is not registered")).into());
    };
    let required = match req.app_data::<web::Data<AccessMap>>() {
        Some(map) => map.required(req.match_pattern().as_deref(), req.path(), req.method()),
        None => return Err(AppError::internal(anyhow::anyhow!("AccessMap is not registered")).into()),
    };
    // An unknown path under the API answers 404 whoever asks; known ones need their role.
    let Access::Token(role) = required else { return Ok(next.call(req).await?.map_into_left_body()) };
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let checked = state
        .db(move |conn| match api_tokens::authenticate(conn, header.as_deref()) {
            Ok(user) => Ok(Ok(user)),
            Err(AuthFailure::Token(refused)) => Ok(Err(refused)),
            Err(AuthFailure::Database(error)) => Err(error.into()),
        })
        .await
        .map_err(ApiError::from)?;
    let refusal = match checked {
        Ok(user) if user.can(role) => {
            req.extensions_mut().insert(user);
            return Ok(next.call(req).await?.map_into_left_body());
        }
        Ok(user) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("This needs the {role} role; the token belongs to {}, a {}.", user.username, user.role),
        ),
        Err(refused) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", refused.to_string()),
    };
    Ok(req.into_response(refusal.error_response()).map_into_right_body())
}

/// `/login?next=…` back to the page asked for (for a GET; a refused POST goes back to the
/// dashboard after login, since its form data is gone).
fn login_redirect(req: &ServiceRequest) -> String {
    if req.method() != Method::GET {
        return "/login".to_owned();
    }
    let target = match req.query_string() {
        "" => req.path().to_owned(),
        query => format!("{}?{query}", req.path()),
    };
    let encoded: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
    format!("/login?next={encoded}")
}

/// The largest form body the CSRF check reads; bigger forms must send the token in the header.
const MAX_FORM_BYTES: usize = 256 * 1024;

/// Refuses an unsafe request (POST, PUT, PATCH, DELETE) that does not carry the session's CSRF
/// token, in the `X-CSRF-Token` header or the `csrf_token` form field.
pub async fn csrf(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let mut provided =
        req.headers().get(csrf::HEADER).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let is_form = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if provided.is_none() && is_form {
        let body = req.extract::<web::Bytes>().await?;
        if body.len() <= MAX_FORM_BYTES {
            provided = url::form_urlencoded::parse(&body)
                .find(|(name, _)| name == csrf::FIELD)
                .map(|(_, value)| value.into_owned());
        }
        // Hand the body back for the handler's own form extractor.
        req.set_payload(body.into());
    }
    if !csrf::matches(&req.get_session(), provided.as_deref()) {
        tracing::warn!(path = req.path(), "refused a request without a valid CSRF token");
        let response = AppError::CsrfFailed.error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Headers on every response: a strict content security policy (no inline script or style, no
/// framing), no MIME sniffing, and HSTS when the site is served over HTTPS.
pub fn security_headers(https: bool) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "same-origin"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"));
    if https {
        headers.add(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
    } else {
        headers
    }
}
