//! `POST /v1/chat` of the chatbot (Bangalore), the public API: the request, the JSON reply, the
//! server-sent events of a streamed answer, and the error body every service answers with.

use serde::{Deserialize, Serialize};

use crate::fraud::Assessment;
use crate::{CustomerId, SessionId};

/// Path of the endpoint.
pub const PATH: &str = "/v1/chat";
/// Longest question accepted, in characters.
pub const MAX_QUESTION_CHARS: usize = 2000;

/// The request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// The customer's question: not blank, at most [`MAX_QUESTION_CHARS`] characters.
    pub question: String,
    /// The customer, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<CustomerId>,
    /// The conversation, if the client keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// Stream the answer as server-sent events.
    #[serde(default)]
    pub stream: bool,
}

/// A dependency the answer had to do without.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Degradation {
    /// Fraud screening did not answer; the request was let through (fail-open).
    FraudUnavailable,
    /// Product lookup did not answer; the answer says so instead of naming products.
    RecommendationUnavailable,
}

impl Degradation {
    /// The wire name, also used as a span attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FraudUnavailable => "fraud_unavailable",
            Self::RecommendationUnavailable => "recommendation_unavailable",
        }
    }
}

/// A product as shown in the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyProduct {
    /// Catalog id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Price in rupees.
    pub price_inr: u64,
    /// Warehouse city.
    pub warehouse: String,
    /// Retrieval score.
    pub score: f32,
}

/// Token counts of the LLM call, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Sum of both.
    pub total_tokens: u64,
}

/// The JSON reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatReply {
    /// The answer.
    pub answer: String,
    /// Products the answer was grounded in.
    pub products: Vec<ReplyProduct>,
    /// The fraud verdict; `None` when the fraud service was unavailable.
    pub fraud: Option<Assessment>,
    /// The model that answered.
    pub model: String,
    /// Token usage of the LLM call.
    pub usage: Usage,
    /// What the LLM calls behind this answer cost (the chat and recommendation's query
    /// embedding); `null` when any of them has no price or could not be accounted for.
    #[serde(default)]
    pub cost: Option<crate::Cost>,
    /// What was unavailable; empty normally.
    pub degraded: Vec<Degradation>,
    /// The session, as sent or as assigned.
    pub session_id: SessionId,
    /// The trace of this request, to find it in Jaeger.
    pub trace_id: Option<String>,
}

/// Data of the first event (`meta`) of a streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamMeta {
    /// Products the answer is grounded in.
    pub products: Vec<ReplyProduct>,
    /// The fraud verdict; `None` when the fraud service was unavailable.
    pub fraud: Option<Assessment>,
    /// What was unavailable; empty normally.
    pub degraded: Vec<Degradation>,
    /// The session, as sent or as assigned.
    pub session_id: SessionId,
    /// The trace of this request.
    pub trace_id: Option<String>,
}

/// Data of a `delta` event: the next piece of the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDelta {
    /// Text to append.
    pub text: String,
}

/// Data of the last event (`done`) of a streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamDone {
    /// The model that answered.
    pub model: String,
    /// Token usage of the LLM call.
    pub usage: Usage,
    /// What the LLM calls behind this answer cost, as in [`ChatReply::cost`].
    #[serde(default)]
    pub cost: Option<crate::Cost>,
    /// Why the model stopped, as it said.
    pub finish_reason: Option<String>,
}

/// What went wrong, without internals: the `error` member of every error body, and the data of
/// a stream's `error` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable code, e.g. `invalid_request` or `blocked`.
    pub code: String,
    /// For a human; never a stack trace or an upstream body.
    pub message: String,
    /// The trace of the failed request, when it was traced.
    pub trace_id: Option<String>,
}

/// The body of every error answer of our services. A request blocked by fraud screening also
/// carries the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
    /// The verdict, on a 403 `blocked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraud: Option<Assessment>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degradations_use_their_wire_names() {
        for d in [
            Degradation::FraudUnavailable,
            Degradation::RecommendationUnavailable,
        ] {
            assert_eq!(
                serde_json::to_string(&d).expect("json"),
                format!("\"{}\"", d.as_str())
            );
        }
    }

    #[test]
    fn a_chat_request_with_an_invalid_customer_id_does_not_parse() {
        let error = serde_json::from_str::<ChatRequest>(r#"{"question":"q","customer_id":"a b"}"#)
            .expect_err("invalid id");
        assert!(error.to_string().contains("customer_id"), "{error}");
        let ok: ChatRequest = serde_json::from_str(r#"{"question":"q"}"#).expect("minimal");
        assert!(!ok.stream && ok.customer_id.is_none());
    }
}
