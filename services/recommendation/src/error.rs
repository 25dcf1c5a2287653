//! The recommendation service's failures and their HTTP answers.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use llm_client::LlmError;
use service_kit::ApiError;

/// This service's failures; each becomes an [`ApiError`] (JSON body with the trace id).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppError {
    /// The request itself is wrong (4xx).
    #[error("{}", .0.message)]
    Invalid(ApiError),
    /// The catalog is not embedded yet.
    #[error("the catalog index is still being built")]
    NotReady,
    /// The embedding model did not answer in time.
    #[error("the embedding model did not answer in time")]
    UpstreamTimeout,
    /// The embedding model failed.
    #[error("the embedding model failed ({0})")]
    Upstream(String),
}

impl From<LlmError> for AppError {
    fn from(e: LlmError) -> Self {
        match e {
            LlmError::Timeout => Self::UpstreamTimeout,
            // Only the low-cardinality type leaves the service: an upstream message may carry
            // details of a third party's API that are none of the caller's business.
            other => Self::Upstream(other.error_type()),
        }
    }
}

impl From<ApiError> for AppError {
    fn from(e: ApiError) -> Self {
        Self::Invalid(e)
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let message = e.to_string();
        let (status, code) = match e {
            AppError::Invalid(e) => return e,
            AppError::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            AppError::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            AppError::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_error"),
        };
        ApiError::new(status, code, message)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let not_ready = self == Self::NotReady;
        let mut response = ApiError::from(self).into_response();
        if not_ready {
            // Catalog embedding retries back off to seconds; tell well-behaved callers so.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
        }
        response
    }
}
