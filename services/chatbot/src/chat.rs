//! `POST /v1/chat`: baggage, the concurrent fraud and recommendation calls, degradation when a
//! dependency fails, and the LLM call, answered as JSON or streamed as server-sent events.

use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use llm_client::{LlmError, StreamEvent, Usage};
use opentelemetry::baggage::{BaggageExt as _, KeyValueMetadata};
use serde::{Deserialize, Serialize};
use serde_json::json;
use service_kit::{ApiError, ApiJson};
use tracing::Instrument as _;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::AppState;
use crate::downstream::{DownstreamError, FraudVerdict, Recommendations, ScoreRequest};

/// Longest question accepted, in characters.
pub const MAX_QUESTION_CHARS: usize = 2000;

/// The request body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// The customer's question.
    pub question: String,
    /// The customer, if known.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// The conversation, if the client keeps one.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Stream the answer as server-sent events.
    #[serde(default)]
    pub stream: bool,
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

/// The JSON reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatReply {
    /// The answer.
    pub answer: String,
    /// Products the answer was grounded in.
    pub products: Vec<ReplyProduct>,
    /// The fraud verdict; `None` when the fraud service was unavailable.
    pub fraud: Option<FraudVerdict>,
    /// The model that answered.
    pub model: String,
    /// Token usage of the LLM call.
    pub usage: Usage,
    /// What was unavailable (`fraud_unavailable`, `recommendation_unavailable`); empty normally.
    pub degraded: Vec<String>,
    /// The session, as sent or as assigned.
    pub session_id: String,
    /// The trace of this request, to find it in Jaeger.
    pub trace_id: Option<String>,
}

fn valid_id(value: &str, max: usize) -> bool {
    !value.is_empty()
        && value.len() <= max
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

fn validate(request: &ChatRequest) -> Result<(), ApiError> {
    let question = request.question.trim();
    if question.is_empty() {
        return Err(ApiError::bad_request("question must not be empty"));
    }
    if request.question.chars().count() > MAX_QUESTION_CHARS {
        return Err(ApiError::bad_request(format!(
            "question must be at most {MAX_QUESTION_CHARS} characters"
        )));
    }
    if let Some(id) = &request.customer_id
        && !valid_id(id, 64)
    {
        return Err(ApiError::unprocessable(
            "customer_id must be 1-64 characters of letters, digits, '_', '.', ':' or '-'",
        ));
    }
    if let Some(id) = &request.session_id
        && !valid_id(id, 128)
    {
        return Err(ApiError::unprocessable(
            "session_id must be 1-128 characters of letters, digits, '_', '.', ':' or '-'",
        ));
    }
    Ok(())
}

fn new_session_id() -> String {
    // RandomState is seeded randomly per process and advanced per instance: enough for an id
    // that only needs to be unique, not secret.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("sess-{:016x}", hasher.finish())
}

/// Who is asking: taken from the caller's baggage when it has them, else from the body, else
/// assigned here.
#[derive(Debug, Clone)]
struct Identity {
    session_id: String,
    customer_id: String,
}

/// Adds session.id, user.id and shopmax.channel to the baggage unless the caller sent them, and
/// returns the context the rest of the request runs in.
fn with_identity(
    cx: &opentelemetry::Context,
    request: &ChatRequest,
    channel: &str,
) -> (opentelemetry::Context, Identity) {
    let incoming = cx.baggage();
    let from_baggage = |key: &str, max: usize| {
        incoming
            .get(key)
            .map(|v| v.as_str().to_owned())
            .filter(|v| valid_id(v, max))
    };
    let session_id = from_baggage("session.id", 128)
        .or_else(|| request.session_id.clone())
        .unwrap_or_else(new_session_id);
    let customer_id = from_baggage("user.id", 64)
        .or_else(|| request.customer_id.clone())
        .unwrap_or_else(|| "anonymous".to_owned());
    // The identity goes first: baggage holds at most 64 members and 8192 bytes, and a caller
    // that filled it must not push out the keys our traces are searched by. A caller's invalid
    // value is replaced, so every span names the identity the request was actually scored as.
    let identity_members = [
        ("session.id", session_id.clone()),
        ("user.id", customer_id.clone()),
        (
            "shopmax.channel",
            incoming
                .get("shopmax.channel")
                .map(|v| v.as_str().to_owned())
                .unwrap_or_else(|| channel.to_owned()),
        ),
    ];
    let mut baggage: Vec<KeyValueMetadata> = identity_members
        .iter()
        .map(|(k, v)| KeyValueMetadata::new(*k, v.clone(), ""))
        .collect();
    baggage.extend(
        incoming
            .iter()
            .filter(|(k, _)| !identity_members.iter().any(|(key, _)| k.as_str() == *key))
            .map(|(k, (v, meta))| KeyValueMetadata::new(k.clone(), v.clone(), meta.clone())),
    );
    (
        cx.with_baggage(baggage),
        Identity {
            session_id,
            customer_id,
        },
    )
}

/// The handler.
pub(crate) async fn chat(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ChatRequest>,
) -> Response {
    if let Err(error) = validate(&request) {
        return error.into_response();
    }
    let server_cx = tracing::Span::current().context();
    let (cx, identity) = with_identity(&server_cx, &request, &state.config.channel);
    let span = tracing::info_span!(
        "chat.answer",
        chat.stream = request.stream,
        chat.degraded = Empty,
        chat.product_count = Empty,
        fraud.decision = Empty,
        fraud.risk_score = Empty,
    );
    let _ = span.set_parent(cx);
    answer(state, request, identity).instrument(span).await
}

struct Grounding {
    fraud: Option<FraudVerdict>,
    recommendations: Recommendations,
    degraded: Vec<String>,
}

async fn answer(state: AppState, request: ChatRequest, identity: Identity) -> Response {
    let span = tracing::Span::current();
    let score_request = ScoreRequest {
        customer_id: identity.customer_id.clone(),
        session_id: identity.session_id.clone(),
        question: request.question.clone(),
    };
    // Fraud and retrieval are independent: run them at once so the slower one sets the pace.
    let (fraud, recommendations) = tokio::join!(
        state.fraud.score(&score_request),
        state
            .recommender
            .recommend(&request.question, state.config.top_k),
    );

    let mut degraded = Vec::new();
    let fraud = match fraud {
        Ok(verdict) => {
            span.record("fraud.decision", verdict.decision.as_str());
            span.record("fraud.risk_score", verdict.risk_score);
            if verdict.decision == "block" {
                tracing::warn!(risk_score = verdict.risk_score, "chat.request.blocked");
                return blocked(verdict);
            }
            Some(verdict)
        }
        Err(error @ DownstreamError::Rejected { .. }) => {
            // A 4xx from fraud is a contract bug between us, not an outage: failing open on it
            // would quietly switch screening off.
            tracing::error!(error = %error, "chat.fraud.rejected");
            return ApiError::new(
                StatusCode::BAD_GATEWAY,
                "fraud_unavailable",
                "fraud screening could not assess this request",
            )
            .into_response();
        }
        Err(error) => {
            tracing::warn!(error = %error, "chat.fraud.unavailable");
            if !state.config.fraud_fail_open {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "fraud_unavailable",
                    "fraud screening is unavailable; please retry shortly",
                )
                .into_response();
            }
            degraded.push("fraud_unavailable".to_owned());
            None
        }
    };
    let recommendations = match recommendations {
        Ok(r) => r,
        Err(error) => {
            tracing::warn!(error = %error, "chat.recommendation.unavailable");
            degraded.push("recommendation_unavailable".to_owned());
            Recommendations {
                products: Vec::new(),
                related: Vec::new(),
            }
        }
    };
    if !degraded.is_empty() {
        span.record("chat.degraded", degraded.join(",").as_str());
    }
    span.record("chat.product_count", recommendations.products.len() as i64);

    let products: Vec<catalog::Product> = recommendations
        .products
        .iter()
        .map(|p| p.product.clone())
        .collect();
    let prompt_grounding = if degraded.iter().any(|d| d == "recommendation_unavailable") {
        crate::prompt::Grounding::LookupUnavailable
    } else {
        crate::prompt::Grounding::Products(&products)
    };
    let llm_request = crate::prompt::build(
        &request.question,
        prompt_grounding,
        state.config.max_answer_tokens,
    );
    let grounding = Grounding {
        fraud,
        recommendations,
        degraded,
    };
    if request.stream {
        stream_answer(state, llm_request, grounding, identity).await
    } else {
        match state.llm.chat(llm_request).await {
            Ok(response) => {
                let reply = ChatReply {
                    answer: response.content,
                    products: reply_products(&grounding.recommendations),
                    fraud: grounding.fraud,
                    model: response.model,
                    usage: response.usage,
                    degraded: grounding.degraded,
                    session_id: identity.session_id,
                    trace_id: telemetry::current_trace_id(),
                };
                tracing::info!(
                    model = %reply.model,
                    prompt_tokens = reply.usage.prompt_tokens,
                    completion_tokens = reply.usage.completion_tokens,
                    "chat.answer.sent"
                );
                ApiJson(reply).into_response()
            }
            Err(error) => llm_error(&error).into_response(),
        }
    }
}

fn reply_products(recommendations: &Recommendations) -> Vec<ReplyProduct> {
    recommendations
        .products
        .iter()
        .map(|p| ReplyProduct {
            id: p.product.id.clone(),
            name: p.product.name.clone(),
            price_inr: p.product.price_inr,
            warehouse: p.product.warehouse.clone(),
            score: p.score,
        })
        .collect()
}

fn blocked(verdict: FraudVerdict) -> Response {
    let body = json!({
        "error": {
            "code": "blocked",
            "message": "this request was blocked by fraud screening",
            "trace_id": telemetry::current_trace_id(),
        },
        "fraud": verdict,
    });
    (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
}

fn llm_error(error: &LlmError) -> ApiError {
    tracing::error!(error = %error, error.type = %error.error_type(), "chat.llm.failed");
    match error {
        LlmError::Timeout => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "llm_timeout",
            "the language model did not answer in time",
        ),
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "llm_unavailable",
            "the language model is unavailable",
        ),
    }
}

/// The first event of a streamed answer.
#[derive(Debug, Serialize)]
struct StreamMeta {
    products: Vec<ReplyProduct>,
    fraud: Option<FraudVerdict>,
    degraded: Vec<String>,
    session_id: String,
    trace_id: Option<String>,
}

/// Streams the answer: a `meta` event (products, fraud verdict, ids), `delta` events with text,
/// then `done` with the model and usage, or `error` if the model fails mid-answer.
async fn stream_answer(
    state: AppState,
    llm_request: llm_client::ChatRequest,
    grounding: Grounding,
    identity: Identity,
) -> Response {
    let stream = match state.llm.chat_stream(llm_request).await {
        Ok(stream) => stream,
        Err(error) => return llm_error(&error).into_response(),
    };
    let trace_id = telemetry::current_trace_id();
    // Serialised from the struct, not through `json!`: that would widen the f32 scores to f64
    // and print them differently from the JSON reply.
    let meta = StreamMeta {
        products: reply_products(&grounding.recommendations),
        fraud: grounding.fraud,
        degraded: grounding.degraded,
        session_id: identity.session_id,
        trace_id: trace_id.clone(),
    };
    let meta = serde_json::to_string(&meta).unwrap_or_default();
    let first = futures_util::stream::once(async move {
        Ok::<Event, Infallible>(Event::default().event("meta").data(meta))
    });
    let span = tracing::Span::current();
    let events = stream.map(move |item| {
        let event = match item {
            Ok(StreamEvent::Delta(text)) => Event::default()
                .event("delta")
                .data(json!({ "text": text }).to_string()),
            Ok(StreamEvent::Done(response)) => {
                span.in_scope(|| {
                    tracing::info!(
                        model = %response.model,
                        prompt_tokens = response.usage.prompt_tokens,
                        completion_tokens = response.usage.completion_tokens,
                        "chat.answer.sent"
                    );
                });
                let done = json!({
                    "model": response.model,
                    "usage": response.usage,
                    "finish_reason": response.finish_reason,
                });
                Event::default().event("done").data(done.to_string())
            }
            Err(error) => {
                let api = llm_error(&error);
                Event::default().event("error").data(
                    json!({ "code": api.code, "message": api.message, "trace_id": trace_id })
                        .to_string(),
                )
            }
        };
        Ok::<Event, Infallible>(event)
    });
    Sse::new(first.chain(events))
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("cust-42", true)]
    #[case("a:b.c_d-e", true)]
    #[case("", false)]
    #[case("has space", false)]
    #[case("ünïcode", false)]
    fn ids_are_checked(#[case] id: &str, #[case] ok: bool) {
        assert_eq!(valid_id(id, 64), ok);
    }

    #[test]
    fn caller_baggage_is_kept_and_missing_keys_added() {
        let cx = opentelemetry::Context::new().with_baggage([
            opentelemetry::KeyValue::new("session.id", "from-caller"),
            opentelemetry::KeyValue::new("other", "x"),
        ]);
        let request = ChatRequest {
            question: "q".into(),
            customer_id: Some("cust-1".into()),
            session_id: Some("from-body".into()),
            stream: false,
        };
        let (cx, identity) = with_identity(&cx, &request, "web");
        let b = cx.baggage();
        assert_eq!(
            b.get("session.id")
                .map(|v| v.as_str().to_owned())
                .as_deref(),
            Some("from-caller")
        );
        assert_eq!(
            b.get("user.id").map(|v| v.as_str().to_owned()).as_deref(),
            Some("cust-1")
        );
        assert_eq!(
            b.get("shopmax.channel")
                .map(|v| v.as_str().to_owned())
                .as_deref(),
            Some("web")
        );
        assert_eq!(
            b.get("other").map(|v| v.as_str().to_owned()).as_deref(),
            Some("x")
        );
        assert_eq!(identity.session_id, "from-caller");
        assert_eq!(identity.customer_id, "cust-1");
    }

    #[test]
    fn identity_survives_a_full_caller_baggage_and_invalid_values_are_replaced() {
        let mut members: Vec<opentelemetry::KeyValue> = (0..63)
            .map(|i| opentelemetry::KeyValue::new(format!("k{i}"), "v"))
            .collect();
        members.push(opentelemetry::KeyValue::new("user.id", "bad value"));
        let cx = opentelemetry::Context::new().with_baggage(members);
        let request = ChatRequest {
            question: "q".into(),
            customer_id: Some("cust-9".into()),
            session_id: None,
            stream: false,
        };
        let (cx, identity) = with_identity(&cx, &request, "web");
        let b = cx.baggage();
        let get = |k: &str| b.get(k).map(|v| v.as_str().to_owned());
        assert_eq!(identity.customer_id, "cust-9");
        assert_eq!(
            get("user.id").as_deref(),
            Some("cust-9"),
            "the scored identity wins"
        );
        assert_eq!(get("session.id"), Some(identity.session_id.clone()));
        assert_eq!(get("shopmax.channel").as_deref(), Some("web"));
        assert_eq!(b.len(), 64, "caller members beyond the limit give way");
    }

    #[test]
    fn session_ids_are_assigned_and_distinct() {
        let a = new_session_id();
        let b = new_session_id();
        assert_ne!(a, b);
        assert!(valid_id(&a, 128));
    }
}
