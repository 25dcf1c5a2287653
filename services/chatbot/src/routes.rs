//! `POST /v1/chat`: checks the question, settles who is asking, and answers inside a
//! `chat.answer` span that carries the identity's baggage, within the request deadline.

use axum::Router;
use axum::extract::{Extension, State};
use axum::response::Response;
use axum::routing::post;
use contract::chat::{self, ChatRequest, MAX_QUESTION_CHARS};
use service_kit::ApiJson;
use tracing::Instrument as _;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::AppState;
use crate::error::AppError;
use crate::identity::{Trust, with_identity};

/// The API routes, before the shared layers (see [`crate::app`]).
pub(crate) fn api(state: AppState) -> Router {
    Router::new()
        .route(chat::PATH, post(chat))
        .with_state(state)
}

/// Identifiers are checked while the body is parsed; what is left is the question.
fn validate(request: &ChatRequest) -> Result<(), AppError> {
    // Control characters alone ("\u0000") say no more than spaces do.
    if request
        .question
        .chars()
        .all(|c| c.is_whitespace() || c.is_control())
    {
        return Err(AppError::InvalidRequest(
            "question must not be empty".into(),
        ));
    }
    if request.question.chars().count() > MAX_QUESTION_CHARS {
        return Err(AppError::InvalidRequest(format!(
            "question must be at most {MAX_QUESTION_CHARS} characters"
        )));
    }
    Ok(())
}

async fn chat(
    State(state): State<AppState>,
    caller: Option<Extension<telemetry::Caller>>,
    ApiJson(request): ApiJson<ChatRequest>,
) -> Result<Response, AppError> {
    validate(&request)?;
    let deadline = tokio::time::Instant::now() + state.config.request_timeout;
    let caller = caller.map(|Extension(c)| c);
    // The edge layer decided (`Config::edge`); without it, nobody is trusted.
    let trust = if caller.is_some_and(|c| c.trusted) {
        Trust::Trusted
    } else {
        Trust::Untrusted
    };
    let server_cx = tracing::Span::current().context();
    let (cx, identity) = with_identity(&server_cx, &request, &state.config.channel, trust);
    // An untrusted caller's customer id is unverified: fraud counts its velocity by address, so
    // naming someone else neither locks them out nor resets the caller's own count. A trusted
    // gateway vouches for its customers, who are counted by id.
    let client_address = match trust {
        Trust::Trusted => None,
        Trust::Untrusted => caller.and_then(|c| c.client),
    };
    let span = tracing::info_span!(
        "chat.answer",
        chat.stream = request.stream,
        chat.degraded = Empty,
        chat.product_count = Empty,
        fraud.decision = Empty,
        fraud.risk_score = Empty,
    );
    let _ = span.set_parent(cx);
    // One deadline for the whole request: what is still running when it passes is dropped (its
    // client span ends as cancelled), and a streamed answer is cut at the same instant.
    let request_span = tracing::Span::current();
    let answer = crate::answer::answer(
        state,
        request,
        identity,
        client_address,
        deadline,
        request_span,
    )
    .instrument(span);
    match tokio::time::timeout_at(deadline, answer).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!("chat.deadline.exceeded");
            Err(AppError::DeadlineExceeded)
        }
    }
}
