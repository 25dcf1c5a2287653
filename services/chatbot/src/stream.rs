//! A streamed answer as server-sent events: `meta` (products, fraud verdict, ids), `delta`
//! events with text, then `done` with the model and usage, or `error` if the model fails
//! mid-answer or the request deadline passes (a model that drips bytes cannot hold the request
//! open past it). Each event's data is a [`contract::chat`] type.

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use contract::chat::{StreamDelta, StreamDone, StreamMeta};
use futures_util::StreamExt as _;
use llm_client::StreamEvent;
use serde::Serialize;

use crate::AppState;
use crate::answer::{Findings, usage};
use crate::error::AppError;
use crate::identity::Identity;

fn event(name: &'static str, data: &impl Serialize) -> Event {
    // Serialised from the contract structs, not through `json!`: that would widen the f32
    // scores to f64 and print them differently from the JSON reply.
    Event::default()
        .event(name)
        .data(serde_json::to_string(data).unwrap_or_default())
}

/// Starts the model's stream and relays it; a model that fails before its first token is an
/// ordinary error answer.
pub(crate) async fn stream_answer(
    state: AppState,
    llm_request: llm_client::ChatRequest,
    findings: Findings,
    identity: Identity,
    deadline: tokio::time::Instant,
    request_span: tracing::Span,
) -> Result<Response, AppError> {
    let stream = state.llm.chat_stream(llm_request).await?;
    let meta = StreamMeta {
        products: findings.reply_products(),
        fraud: findings.fraud.clone(),
        degraded: findings.degraded.clone(),
        session_id: identity.session_id,
        trace_id: telemetry::current_trace_id(),
    };
    let first = futures_util::stream::once(std::future::ready(Ok::<Event, Infallible>(event(
        "meta", &meta,
    ))));
    let trace_id = meta.trace_id.clone();
    let span = tracing::Span::current();
    let stream = until_deadline(stream, deadline, span.clone(), trace_id.clone());
    let events = stream.map(move |item| {
        let event = match item {
            Relayed::Late(detail) => event("error", &detail),
            Relayed::Model(Ok(StreamEvent::Delta(text))) => event("delta", &StreamDelta { text }),
            Relayed::Model(Ok(StreamEvent::Done(response))) => {
                let cost = findings.total_cost(response.cost.as_ref(), &request_span);
                span.in_scope(|| findings.evaluate(&response, &request_span));
                span.in_scope(|| {
                    tracing::info!(
                        model = %response.model,
                        prompt_tokens = response.usage.prompt_tokens,
                        completion_tokens = response.usage.completion_tokens,
                        cost = cost.as_ref().map(|c| c.amount),
                        "chat.answer.sent"
                    );
                });
                let done = StreamDone {
                    model: response.model,
                    usage: usage(response.usage),
                    cost,
                    finish_reason: response.finish_reason,
                };
                event("done", &done)
            }
            Relayed::Model(Err(error)) => {
                let error = span.in_scope(|| AppError::from(error));
                event("error", &error.detail(trace_id.clone()))
            }
        };
        Ok::<Event, Infallible>(event)
    });
    Ok(Sse::new(first.chain(events))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// One item of the relayed stream: the model's, or the deadline passing.
enum Relayed<T> {
    Model(T),
    Late(contract::chat::ErrorDetail),
}

/// `stream` until it ends or `deadline` passes; then one `Late` item and the end. Dropping the
/// model's stream at that point closes its connection and ends the LLM span.
fn until_deadline<S: futures_util::Stream + Unpin>(
    stream: S,
    deadline: tokio::time::Instant,
    span: tracing::Span,
    trace_id: Option<String>,
) -> impl futures_util::Stream<Item = Relayed<S::Item>> {
    futures_util::stream::unfold(Some(stream), move |state| {
        let (span, trace_id) = (span.clone(), trace_id.clone());
        async move {
            let mut stream = state?;
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(item)) => Some((Relayed::Model(item), Some(stream))),
                Ok(None) => None,
                Err(_) => {
                    drop(stream);
                    span.in_scope(|| tracing::warn!("chat.deadline.exceeded"));
                    let detail = AppError::DeadlineExceeded.detail(trace_id);
                    Some((Relayed::Late(detail), None))
                }
            }
        }
    })
}
