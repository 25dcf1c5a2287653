//! A JSON extractor whose every rejection is a clear 4xx JSON error, and the body limit.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Largest request body any service accepts; bigger bodies get 413 before they are read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Like [`axum::Json`], but every rejection is an [`ApiError`]: 415 for a wrong content type,
/// 400 for malformed JSON, 422 for well-formed JSON of the wrong shape (unknown or missing
/// fields, wrong types), 413 for an oversized body.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(unsupported_media_type());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::bad_request(rejection.body_text())
            }
        })?;
        // Every request type is an object: serde would otherwise fill a struct's fields from a
        // JSON array by position, which no client means. Well-formed JSON of another kind is a
        // shape error (422); a body that is not JSON at all stays malformed (400).
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => {}
            Some(_) => {
                return Err(
                    match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                        Ok(_) => ApiError::unprocessable("the request body must be a JSON object"),
                        Err(e) => ApiError::bad_request(format!("malformed JSON: {e}")),
                    },
                );
            }
            None => return Err(ApiError::bad_request("the request body is empty")),
        }
        parse(&bytes).map(Self)
    }
}

/// Parses a JSON body as axum's `Json` does (serde with the path of the failing field, trailing
/// characters refused), but words a shape error for a person: `customer_id: must be ...`, not
/// "Failed to deserialize the JSON body into the target type: ... at line 1 column 81".
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_data() {
            ApiError::unprocessable(with_path(&path, &without_location(&inner)))
        } else {
            ApiError::bad_request(format!("malformed JSON: {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// serde_json's message without its " at line L column C" suffix.
fn without_location(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    message
        .strip_suffix(&suffix)
        .map_or(message.clone(), str::to_owned)
}

/// `path: message`, unless the error is about the whole body or already names its field.
fn with_path(path: &str, message: &str) -> String {
    if path == "." || message.starts_with(path) {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

pub(crate) fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
    )
}

/// `application/json` or any `application/*+json`, as axum's own extractor accepts.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "expected Content-Type: application/json",
    )
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

/// The body size limit every service's API routes get. It is enforced by the extractors, so an
/// oversized body is answered by [`ApiJson`] as a JSON 413, whether or not it declared its length.
pub fn limits() -> axum::extract::DefaultBodyLimit {
    axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES)
}
