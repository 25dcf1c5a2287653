//! The chatbot's failures and their HTTP answers: one enum, so the handler returns `Result` and
//! uses `?`, and a streamed answer's `error` event says the same as a JSON error would.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use contract::chat::{ErrorBody, ErrorDetail};
use contract::fraud::Assessment;
use llm_client::LlmError;
use service_kit::ApiError;

/// What can go wrong answering a question.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    /// The question is unacceptable (400 `invalid_request`).
    #[error("{0}")]
    InvalidRequest(String),
    /// Fraud screening blocked the request (403 `blocked`, with the verdict).
    #[error("this request was blocked by fraud screening")]
    Blocked(Assessment),
    /// Fraud refused our request with a 4xx, or answered a verdict we cannot read: a contract
    /// break between the services, not an outage, so it is never failed open (502
    /// `fraud_unavailable`).
    #[error("fraud screening could not assess this request")]
    FraudRejected,
    /// Fraud is down and the chatbot fails closed (503 `fraud_unavailable`).
    #[error("fraud screening is unavailable; please retry shortly")]
    FraudUnavailable,
    /// The language model did not answer in time (504 `llm_timeout`).
    #[error("the language model did not answer in time")]
    LlmTimeout,
    /// The language model failed (502 `llm_unavailable`).
    #[error("the language model is unavailable")]
    LlmUnavailable,
    /// The whole request ran past `CHATBOT_REQUEST_TIMEOUT_MS` (504 `deadline_exceeded`); the
    /// trace shows which call was still running (its span ends with `error.type=cancelled`).
    #[error("the answer took longer than the request deadline")]
    DeadlineExceeded,
}

impl From<LlmError> for AppError {
    fn from(error: LlmError) -> Self {
        // The detail stays in the log and on the LLM span; the caller gets the category only.
        tracing::error!(error = %error, error.type = %error.error_type(), "chat.llm.failed");
        match error {
            LlmError::Timeout => Self::LlmTimeout,
            _ => Self::LlmUnavailable,
        }
    }
}

impl AppError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::Blocked(_) => StatusCode::FORBIDDEN,
            Self::FraudRejected | Self::LlmUnavailable => StatusCode::BAD_GATEWAY,
            Self::FraudUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::LlmTimeout | Self::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::Blocked(_) => "blocked",
            Self::FraudRejected | Self::FraudUnavailable => "fraud_unavailable",
            Self::LlmTimeout => "llm_timeout",
            Self::LlmUnavailable => "llm_unavailable",
            Self::DeadlineExceeded => "deadline_exceeded",
        }
    }

    /// What a stream's `error` event carries.
    pub fn detail(&self, trace_id: Option<String>) -> ErrorDetail {
        ErrorDetail {
            code: self.code().to_owned(),
            message: self.to_string(),
            trace_id,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code, message) = (self.status(), self.code(), self.to_string());
        match self {
            Self::Blocked(verdict) => {
                tracing::warn!(risk_score = verdict.risk_score, "chat.request.blocked");
                let body = ErrorBody {
                    error: ErrorDetail {
                        code: code.to_owned(),
                        message,
                        trace_id: telemetry::current_trace_id(),
                    },
                    fraud: Some(verdict),
                };
                (status, Json(body)).into_response()
            }
            _ => ApiError::new(status, code, message).into_response(),
        }
    }
}
