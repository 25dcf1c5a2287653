//! The fraud service's failures and their HTTP answers.

use axum::response::{IntoResponse, Response};
use service_kit::ApiError;

/// What can go wrong in a handler. Identifiers are checked while the body is parsed
/// ([`contract::CustomerId`]), so what is left is the question itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// A field is well-formed JSON but not an acceptable value (422 `invalid_field`).
    #[error("{0}")]
    InvalidField(String),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::InvalidField(message) => ApiError::unprocessable(message).into_response(),
        }
    }
}
