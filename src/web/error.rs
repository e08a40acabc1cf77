//! The one error type of the web layer: it logs the cause chain once and shows the person a
//! friendly page with the right status.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::web::page::Page;

/// A request that could not be answered with the page it asked for.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("The page you asked for does not exist.")]
    NotFound,
    #[error("Your role does not allow this. Ask an admin if you need it.")]
    Forbidden,
    #[error(
        "The form was sent without its security token, or the token is stale. Go back, reload the page and try again."
    )]
    CsrfFailed,
    #[error("Something went wrong on our side. The error has been logged.")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Internal(anyhow::Error::new(error).context("A database query failed"))
    }
}

impl From<crate::scheduler::actions::ActionError> for AppError {
    fn from(error: crate::scheduler::actions::ActionError) -> Self {
        use crate::scheduler::actions::ActionError;
        match error {
            ActionError::NotFound => Self::NotFound,
            other => Self::Internal(anyhow::Error::new(other).context("A schedule action failed")),
        }
    }
}

impl From<askama::Error> for AppError {
    fn from(error: askama::Error) -> Self {
        Self::Internal(anyhow::Error::new(error).context("Failed to render a template"))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    page: Page,
    title: &'a str,
    message: String,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Forbidden | Self::CsrfFailed => StatusCode::FORBIDDEN,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(cause) = self {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        let title = match self {
            Self::NotFound => "Not found",
            Self::Forbidden => "Permission denied",
            Self::CsrfFailed => "Forbidden (CSRF check failed)",
            Self::Internal(_) => "Server error",
        };
        let body = ErrorPage { page: Page::bare(), title, message: self.to_string() }
            .render()
            .unwrap_or_else(|_| self.to_string());
        HttpResponse::build(self.status_code()).content_type("text/html; charset=utf-8").body(body)
    }
}
