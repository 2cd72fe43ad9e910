//! Errors as the server answers them: a status and a message that says what happened
//! and what to do, as JSON (`{"error": "…"}`) for the API and as an HTML page (escaped,
//! never a stack trace) for the dashboard.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

/// An error answered to the client.
#[derive(Debug, Clone)]
pub struct AppError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What happened and what to do.
    pub message: String,
    /// Every problem, when the engine found several at once (bad input, exit code 2):
    /// the JSON body lists them as `errors` beside the joined `error`.
    pub errors: Vec<String>,
}

impl AppError {
    /// An error with a status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> AppError {
        AppError {
            status,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    /// With every problem listed (see [`AppError::errors`]).
    pub fn with_errors(mut self, errors: Vec<String>) -> AppError {
        self.errors = errors;
        self
    }

    /// 400: the request itself is wrong.
    pub fn bad(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::NOT_FOUND, message)
    }

    /// From an engine's exit code (ARCHITECTURE.md): 2 is the request's fault (400), a
    /// database that cannot be reached is 503, the rest 500.
    pub fn from_exit(code: i32, message: impl Into<String>) -> AppError {
        let status = match code {
            2 => StatusCode::BAD_REQUEST,
            1 => StatusCode::SERVICE_UNAVAILABLE,
            4 => StatusCode::CONFLICT,
            3 => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        AppError::new(status, message)
    }

    /// As JSON or as a page.
    pub fn respond(self, json: bool) -> Response {
        if json && !self.errors.is_empty() {
            let body = serde_json::json!({ "error": self.message, "errors": self.errors });
            (self.status, Json(body)).into_response()
        } else if json {
            (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
        } else {
            PageError(self).into_response()
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.respond(true)
    }
}

/// An error shown as a page.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        PageError(e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        let page = ErrorPage {
            status: e.status.as_u16(),
            reason: e.status.canonical_reason().unwrap_or("Error"),
            message: &e.message,
        };
        match page.render() {
            Ok(html) => (e.status, Html(html)).into_response(),
            Err(_) => (e.status, e.message).into_response(),
        }
    }
}

/// Renders a page template, or the error page if that fails.
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => PageError(AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the page could not be drawn: {e}"),
        ))
        .into_response(),
    }
}
