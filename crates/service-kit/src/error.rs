//! The JSON error answer every ShopMax service gives.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use contract::chat::{ErrorBody, ErrorDetail};

/// An error answer: status, a stable machine-readable code, and a human message without internals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `invalid_request`.
    pub code: &'static str,
    /// What went wrong, for a human; never a stack trace or an upstream body.
    pub message: String,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 422 `invalid_field`.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let trace_id = telemetry::current_trace_id();
        tracing::warn!(
            status = self.status.as_u16(),
            code = self.code,
            detail = %self.message,
            "request.rejected"
        );
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                trace_id,
            },
            fraud: None,
        };
        (self.status, Json(body)).into_response()
    }
}
