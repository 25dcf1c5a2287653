//! Errors in OpenAI's wire format, and a JSON extractor whose every rejection is one: OpenAI SDKs
//! parse `{"error": {...}}` bodies, so the mock must never answer in another shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

/// An OpenAI-style error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `type`, e.g. `invalid_request_error`.
    pub kind: &'static str,
    /// `code`, e.g. `rate_limit_exceeded`.
    pub code: Option<&'static str>,
    /// `param`: the offending request field, if one.
    pub param: Option<String>,
    /// `message`, for a human.
    pub message: String,
    /// `Retry-After` seconds, sent with 429s.
    pub retry_after_secs: Option<u64>,
}

impl OpenAiError {
    /// 400 `invalid_request_error`.
    pub fn invalid(code: &'static str, param: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: Some(code),
            param: param.map(str::to_owned),
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// 429 as OpenAI sends it when a requests-per-minute limit is hit.
    pub fn rate_limited(model: &str, retry_after_secs: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "requests",
            code: Some("rate_limit_exceeded"),
            param: None,
            message: format!(
                "Rate limit reached for {model} (mock fault injection) on requests per min (RPM). \
                 Please try again in {retry_after_secs}s."
            ),
            retry_after_secs: Some(retry_after_secs),
        }
    }

    /// 500 as OpenAI sends it for its own failures.
    pub fn server_error() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "server_error",
            code: Some("server_error"),
            param: None,
            message: "The server had an error while processing your request (mock fault \
                      injection). Sorry about that!"
                .to_owned(),
            retry_after_secs: None,
        }
    }

    /// 404 for an unknown path or model.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: Some(code),
            param: None,
            message: message.into(),
            retry_after_secs: None,
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        tracing::info!(
            status = self.status.as_u16(),
            code = self.code.unwrap_or(""),
            detail = %self.message,
            "mock_llm.request.rejected"
        );
        let body = json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A JSON body parsed with [`OpenAiError`] rejections: 413 when too large, 400 for malformed JSON
/// or the wrong shape. The content type is not checked, as OpenAI does not either.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OpenAiJson<T>(pub T);

impl<T, S> FromRequest<S> for OpenAiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = OpenAiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                OpenAiError {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    ..OpenAiError::invalid(
                        "request_too_large",
                        None,
                        format!(
                            "Request bodies are limited to {} bytes.",
                            crate::MAX_BODY_BYTES
                        ),
                    )
                }
            } else {
                OpenAiError::invalid("invalid_body", None, "The request body could not be read.")
            }
        })?;
        serde_json::from_slice(&bytes).map(Self).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Syntax | Category::Eof | Category::Io => OpenAiError::invalid(
                    "invalid_json",
                    None,
                    format!(
                        "We could not parse the JSON body of your request ({e}). The OpenAI API \
                         expects a JSON payload."
                    ),
                ),
                Category::Data => match missing_field(&e) {
                    Some(field) => OpenAiError::invalid(
                        "missing_required_parameter",
                        Some(&field),
                        format!("Missing required parameter: '{field}'."),
                    ),
                    None => {
                        OpenAiError::invalid("invalid_type", None, format!("Invalid request: {e}"))
                    }
                },
            }
        })
    }
}

/// The field named by serde's "missing field `x`" error, which has no structured form.
fn missing_field(error: &serde_json::Error) -> Option<String> {
    let message = error.to_string();
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}
