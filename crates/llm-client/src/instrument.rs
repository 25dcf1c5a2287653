//! The GenAI span and metrics of one logical operation (a chat completion or an embeddings call),
//! per the OpenTelemetry GenAI semantic conventions, plus the seed article's `llm.*` attributes.
//!
//! An [`Operation`] is the parent of every HTTP attempt it makes, so retries show as sibling HTTP
//! CLIENT spans under one GenAI CLIENT span. It ends exactly once: on success, on failure, or,
//! when its caller drops it first (a stream abandoned half-way, a future cancelled), as
//! `error.type=cancelled`, so an abandoned call neither leaks an open span nor counts as a
//! success in the duration histogram.

use std::sync::Arc;
use std::time::{Duration, Instant};

use contract::Cost;
use opentelemetry::metrics::{Counter, Histogram};
use opentelemetry::trace::{Status, TraceContextExt as _};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use serde::Serialize;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::pricing::{PriceTable, TokenCounts};
use crate::semconv as sc;
use crate::{ChatMessage, ChatRequest, ChatResponse, LlmError, Role, Usage};

/// The histograms, created once per client on the global meter provider.
#[derive(Debug)]
pub(crate) struct Instruments {
    token_usage: Histogram<u64>,
    duration: Histogram<f64>,
    time_to_first_chunk: Histogram<f64>,
    time_per_output_chunk: Histogram<f64>,
    cost: Counter<f64>,
}

impl Instruments {
    /// Builds the instruments with the bucket boundaries the conventions recommend.
    pub(crate) fn new() -> Self {
        let meter = opentelemetry::global::meter(sc::METER_SCOPE);
        Self {
            token_usage: meter
                .u64_histogram(sc::METRIC_CLIENT_TOKEN_USAGE)
                .with_unit(sc::UNIT_TOKEN)
                .with_description("Number of input and output tokens used.")
                .with_boundaries(sc::TOKEN_USAGE_BUCKETS.to_vec())
                .build(),
            duration: meter
                .f64_histogram(sc::METRIC_CLIENT_OPERATION_DURATION)
                .with_unit(sc::UNIT_SECONDS)
                .with_description("GenAI operation duration.")
                .with_boundaries(sc::DURATION_BUCKETS.to_vec())
                .build(),
            time_to_first_chunk: meter
                .f64_histogram(sc::METRIC_CLIENT_TIME_TO_FIRST_CHUNK)
                .with_unit(sc::UNIT_SECONDS)
                .with_description("Time to receive the first chunk of a streamed response.")
                .with_boundaries(sc::DURATION_BUCKETS.to_vec())
                .build(),
            time_per_output_chunk: meter
                .f64_histogram(sc::METRIC_CLIENT_TIME_PER_OUTPUT_CHUNK)
                .with_unit(sc::UNIT_SECONDS)
                .with_description(
                    "Time between consecutive chunks of a streamed response, for each chunk after the first.",
                )
                .with_boundaries(sc::DURATION_BUCKETS.to_vec())
                .build(),
            cost: meter
                .f64_counter(sc::METRIC_CLIENT_OPERATION_COST)
                .with_unit(sc::UNIT_COST)
                .with_description(
                    "Cost of GenAI operations, in the currency of gen_ai.usage.cost.currency.",
                )
                .build(),
        }
    }
}

/// What every operation of one client shares: where it talks to and how to record it.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) provider: String,
    pub(crate) server_address: String,
    pub(crate) server_port: Option<u16>,
    pub(crate) capture_content: bool,
    /// Whether spans carry the seed article's `llm.*` attributes too.
    pub(crate) article_attributes: bool,
    pub(crate) prices: PriceTable,
    pub(crate) instruments: Instruments,
}

/// Which GenAI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Chat,
    Embeddings,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Chat => sc::OPERATION_CHAT,
            Self::Embeddings => sc::OPERATION_EMBEDDINGS,
        }
    }
}

/// One logical GenAI call: its span, its clock, and the metrics it records when it ends.
#[derive(Debug)]
pub(crate) struct Operation {
    span: tracing::Span,
    kind: Kind,
    request_model: String,
    response_model: Option<String>,
    start: Instant,
    /// When the attempt that succeeded began (the start until one has).
    attempt_began: Instant,
    /// When the last chunk of a stream arrived.
    last_chunk: Option<Instant>,
    target: Arc<Target>,
    ended: bool,
}

impl Operation {
    /// Starts a `chat {model}` span (streamed or not); records the prompt only when content
    /// capture is on.
    pub(crate) fn chat(
        target: &Arc<Target>,
        model: &str,
        request: &ChatRequest,
        stream: bool,
    ) -> Self {
        let op = Self::start(target, Kind::Chat, model);
        op.span.record(sc::GEN_AI_REQUEST_STREAM, stream);
        op.span.record(sc::GEN_AI_OUTPUT_TYPE, sc::OUTPUT_TYPE_TEXT);
        if let Some(conversation) = &request.conversation_id {
            op.span
                .record(sc::GEN_AI_CONVERSATION_ID, conversation.as_str());
        }
        if let Some(t) = request.temperature {
            // Widening 0.2f32 gives 0.20000000298…; going through the shortest decimal form
            // records the value the caller wrote.
            let t = t.to_string().parse::<f64>().unwrap_or(f64::from(t));
            op.span.record(sc::GEN_AI_REQUEST_TEMPERATURE, t);
        }
        if let Some(m) = request.max_tokens {
            op.span.record(sc::GEN_AI_REQUEST_MAX_TOKENS, i64::from(m));
        }
        if target.capture_content {
            // Set as an OpenTelemetry attribute, not a tracing field, so log formatters that
            // print span fields never see customer text.
            op.span.set_attribute(
                sc::GEN_AI_INPUT_MESSAGES,
                input_messages_json(&request.messages),
            );
        }
        op
    }

    /// Starts an `embeddings {model}` span.
    pub(crate) fn embeddings(target: &Arc<Target>, model: &str) -> Self {
        Self::start(target, Kind::Embeddings, model)
    }

    fn start(target: &Arc<Target>, kind: Kind, model: &str) -> Self {
        let name = format!("{} {model}", kind.name());
        let span = tracing::info_span!(
            sc::TRACING_SPAN_NAME,
            otel.name = %name,
            otel.kind = "client",
            { sc::GEN_AI_OPERATION_NAME } = kind.name(),
            { sc::GEN_AI_PROVIDER_NAME } = %target.provider,
            { sc::GEN_AI_REQUEST_MODEL } = %model,
            { sc::GEN_AI_CONVERSATION_ID } = Empty,
            { sc::GEN_AI_REQUEST_STREAM } = Empty,
            { sc::GEN_AI_OUTPUT_TYPE } = Empty,
            { sc::GEN_AI_REQUEST_TEMPERATURE } = Empty,
            { sc::GEN_AI_REQUEST_MAX_TOKENS } = Empty,
            { sc::SERVER_ADDRESS } = %target.server_address,
            { sc::SERVER_PORT } = Empty,
            { sc::GEN_AI_RESPONSE_MODEL } = Empty,
            { sc::GEN_AI_RESPONSE_ID } = Empty,
            { sc::GEN_AI_USAGE_INPUT_TOKENS } = Empty,
            { sc::GEN_AI_USAGE_OUTPUT_TOKENS } = Empty,
            { sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS } = Empty,
            { sc::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK } = Empty,
            { sc::GEN_AI_EMBEDDINGS_DIMENSION_COUNT } = Empty,
            { sc::GEN_AI_USAGE_COST_AMOUNT } = Empty,
            { sc::GEN_AI_USAGE_COST_CURRENCY } = Empty,
            { sc::GEN_AI_USAGE_COST_SOURCE } = Empty,
            { sc::ERROR_TYPE } = Empty,
            { sc::LLM_MODEL } = Empty,
            { sc::LLM_PROMPT_TOKENS } = Empty,
            { sc::LLM_COMPLETION_TOKENS } = Empty,
            { sc::LLM_LATENCY_MS } = Empty,
        );
        if let Some(port) = target.server_port {
            span.record(sc::SERVER_PORT, i64::from(port));
        }
        let now = Instant::now();
        Self {
            span,
            kind,
            request_model: model.to_owned(),
            response_model: None,
            start: now,
            attempt_began: now,
            last_chunk: None,
            target: target.clone(),
            ended: false,
        }
    }

    /// The span, to run the HTTP attempts under.
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Notes a retry on the span: which resend comes next, why, and how long we wait first.
    pub(crate) fn record_retry(
        &self,
        resend: u32,
        reason: &str,
        wait: Duration,
        from_retry_after: bool,
    ) {
        // One tracing event is both the log line and, through tracing-opentelemetry, the span
        // event (named after the message). A warning: an attempt failed, and only warnings and
        // errors become span events (telemetry's span filter).
        tracing::event!(
            parent: &self.span,
            tracing::Level::WARN,
            {
                { sc::LLM_RETRY_ATTEMPT } = i64::from(resend),
                { sc::ERROR_TYPE } = reason,
                { sc::LLM_RETRY_WAIT_MS } = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX),
                { sc::LLM_RETRY_AFTER_HONOURED } = from_retry_after,
            },
            "{}",
            sc::LLM_RETRY_EVENT
        );
    }

    /// Notes when the attempt that succeeded began.
    pub(crate) fn attempt_began(&mut self, at: Instant) {
        self.attempt_began = at;
    }

    /// Records a stream chunk that arrived at `at`: for the first, the time to first chunk
    /// (from the start of the attempt that succeeded, so failed attempts and backoff do not
    /// count); for each later one, the time since the previous chunk
    /// (`gen_ai.client.operation.time_per_output_chunk`).
    pub(crate) fn record_chunk(&mut self, at: Instant) {
        let attrs = self.metric_attributes();
        let instruments = &self.target.instruments;
        match self.last_chunk.replace(at) {
            None => {
                let seconds = at
                    .saturating_duration_since(self.attempt_began)
                    .as_secs_f64();
                self.span
                    .record(sc::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, seconds);
                instruments.time_to_first_chunk.record(seconds, &attrs);
            }
            Some(previous) => {
                let seconds = at.saturating_duration_since(previous).as_secs_f64();
                instruments.time_per_output_chunk.record(seconds, &attrs);
            }
        }
    }

    /// Records the model the server says answered, as soon as it is known.
    pub(crate) fn record_response_model(&mut self, model: &str) {
        if self.response_model.is_none() && !model.is_empty() {
            self.span.record(sc::GEN_AI_RESPONSE_MODEL, model);
            self.response_model = Some(model.to_owned());
        }
    }

    /// Ends a chat successfully, and sets the response's cost (when its model has a price and
    /// the server reported usage) and span context. `response_model` is what the server
    /// reported (the response's `model` may be our fallback); `usage` is `None` when the server
    /// sent none.
    pub(crate) fn succeed_chat(
        &mut self,
        response: &mut ChatResponse,
        response_model: Option<&str>,
        usage: Option<Usage>,
    ) {
        if let Some(model) = response_model {
            self.record_response_model(model);
        }
        if !response.id.is_empty() {
            self.span
                .record(sc::GEN_AI_RESPONSE_ID, response.id.as_str());
        }
        if let Some(reason) = &response.finish_reason {
            self.span.set_attribute(
                sc::GEN_AI_RESPONSE_FINISH_REASONS,
                Value::Array(Array::String(vec![StringValue::from(reason.clone())])),
            );
        }
        if let Some(usage) = usage {
            self.record_usage(Some(usage.prompt_tokens), Some(usage.completion_tokens));
            if let Some(cached) = usage.cached_prompt_tokens {
                self.span.record(
                    sc::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
                    i64::try_from(cached).unwrap_or(i64::MAX),
                );
            }
        }
        response.span_context = Some(self.span.context().span().span_context().clone());
        response.cost = usage.and_then(|u| {
            self.record_cost(TokenCounts {
                input: u.prompt_tokens,
                cached_input: u.cached_prompt_tokens.unwrap_or(0),
                output: u.completion_tokens,
            })
        });
        if self.target.capture_content {
            self.span.set_attribute(
                sc::GEN_AI_OUTPUT_MESSAGES,
                output_messages_json(&response.content, response.finish_reason.as_deref()),
            );
        }
        self.end(None);
    }

    /// Ends an embeddings call successfully and returns its cost, when its model has a price
    /// and the server reported the input tokens.
    pub(crate) fn succeed_embeddings(
        &mut self,
        response_model: Option<&str>,
        input_tokens: Option<u64>,
        dimensions: Option<usize>,
    ) -> Option<Cost> {
        if let Some(model) = response_model {
            self.record_response_model(model);
        }
        if let Some(d) = dimensions.and_then(|d| i64::try_from(d).ok()) {
            self.span.record(sc::GEN_AI_EMBEDDINGS_DIMENSION_COUNT, d);
        }
        self.record_usage(input_tokens, None);
        let cost = input_tokens.and_then(|input| {
            self.record_cost(TokenCounts {
                input,
                ..TokenCounts::default()
            })
        });
        self.end(None);
        cost
    }

    /// Prices `tokens` by the model that answered (else the one asked for), and records the
    /// cost on the span and the cost counter. An unpriced model records nothing.
    fn record_cost(&self, tokens: TokenCounts) -> Option<Cost> {
        let model = self
            .response_model
            .as_deref()
            .unwrap_or(&self.request_model);
        let cost = self.target.prices.cost(model, tokens)?;
        self.span.record(sc::GEN_AI_USAGE_COST_AMOUNT, cost.amount);
        self.span
            .record(sc::GEN_AI_USAGE_COST_CURRENCY, cost.currency.as_str());
        self.span
            .record(sc::GEN_AI_USAGE_COST_SOURCE, sc::COST_SOURCE_LOCAL);
        let mut attrs = self.metric_attributes();
        attrs.push(KeyValue::new(
            sc::GEN_AI_USAGE_COST_CURRENCY,
            cost.currency.clone(),
        ));
        attrs.push(KeyValue::new(
            sc::GEN_AI_USAGE_COST_SOURCE,
            sc::COST_SOURCE_LOCAL,
        ));
        self.target.instruments.cost.add(cost.amount, &attrs);
        Some(cost)
    }

    /// Ends the operation as failed with `error`.
    pub(crate) fn fail(&mut self, error: &LlmError) {
        self.end(Some((error.error_type(), error.to_string())));
    }

    fn record_usage(&self, input: Option<u64>, output: Option<u64>) {
        let base = self.metric_attributes();
        let histogram = &self.target.instruments.token_usage;
        for (tokens, span_key, llm_key, kind) in [
            (
                input,
                sc::GEN_AI_USAGE_INPUT_TOKENS,
                sc::LLM_PROMPT_TOKENS,
                sc::TOKEN_TYPE_INPUT,
            ),
            (
                output,
                sc::GEN_AI_USAGE_OUTPUT_TOKENS,
                sc::LLM_COMPLETION_TOKENS,
                sc::TOKEN_TYPE_OUTPUT,
            ),
        ] {
            let Some(tokens) = tokens else { continue };
            let as_i64 = i64::try_from(tokens).unwrap_or(i64::MAX);
            self.span.record(span_key, as_i64);
            if self.kind == Kind::Chat && self.target.article_attributes {
                self.span.record(llm_key, as_i64);
            }
            let mut attrs = base.clone();
            attrs.push(KeyValue::new(sc::GEN_AI_TOKEN_TYPE, kind));
            histogram.record(tokens, &attrs);
        }
    }

    fn end(&mut self, error: Option<(String, String)>) {
        if self.ended {
            return;
        }
        self.ended = true;
        let elapsed = self.start.elapsed();
        if self.kind == Kind::Chat && self.target.article_attributes {
            let model = self
                .response_model
                .as_deref()
                .unwrap_or(&self.request_model);
            self.span.record(sc::LLM_MODEL, model);
            self.span.record(
                sc::LLM_LATENCY_MS,
                i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
            );
        }
        let mut attrs = self.metric_attributes();
        if let Some((error_type, message)) = error {
            self.span.record(sc::ERROR_TYPE, error_type.as_str());
            self.span.set_status(Status::error(message));
            attrs.push(KeyValue::new(sc::ERROR_TYPE, error_type));
        }
        self.target
            .instruments
            .duration
            .record(elapsed.as_secs_f64(), &attrs);
        // tracing-opentelemetry ends a span at its last exit, and a stream's span is not
        // entered while the caller reads it: enter it once more so it ends now. Dropping our
        // handle then closes it rather than whenever the caller drops the stream.
        self.span.in_scope(|| ());
        self.span = tracing::Span::none();
    }

    fn metric_attributes(&self) -> Vec<KeyValue> {
        let mut attrs = vec![
            KeyValue::new(sc::GEN_AI_OPERATION_NAME, self.kind.name()),
            KeyValue::new(sc::GEN_AI_PROVIDER_NAME, self.target.provider.clone()),
            KeyValue::new(sc::GEN_AI_REQUEST_MODEL, self.request_model.clone()),
            KeyValue::new(sc::SERVER_ADDRESS, self.target.server_address.clone()),
        ];
        if let Some(port) = self.target.server_port {
            attrs.push(KeyValue::new(sc::SERVER_PORT, i64::from(port)));
        }
        if let Some(model) = &self.response_model {
            attrs.push(KeyValue::new(sc::GEN_AI_RESPONSE_MODEL, model.clone()));
        }
        attrs
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        if !self.ended {
            self.end(Some((
                sc::ERROR_TYPE_CANCELLED.to_owned(),
                "the caller abandoned the operation".to_owned(),
            )));
        }
    }
}

/// A text part of a message, in the conventions' message schema.
#[derive(Serialize)]
struct TextPart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct InputMessage<'a> {
    role: Role,
    parts: [TextPart<'a>; 1],
}

#[derive(Serialize)]
struct OutputMessage<'a> {
    role: Role,
    parts: [TextPart<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'a str>,
}

/// `gen_ai.input.messages`: `[{"role":"user","parts":[{"type":"text","content":"…"}]}]`.
pub(crate) fn input_messages_json(messages: &[ChatMessage]) -> String {
    let messages: Vec<InputMessage<'_>> = messages
        .iter()
        .map(|m| InputMessage {
            role: m.role,
            parts: [TextPart {
                kind: "text",
                content: &m.content,
            }],
        })
        .collect();
    serde_json::to_string(&messages).unwrap_or_default()
}

/// `gen_ai.output.messages`: one assistant message with its finish reason.
pub(crate) fn output_messages_json(content: &str, finish_reason: Option<&str>) -> String {
    let message = [OutputMessage {
        role: Role::Assistant,
        parts: [TextPart {
            kind: "text",
            content,
        }],
        finish_reason,
    }];
    serde_json::to_string(&message).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_follow_the_conventions_schema() {
        let input = input_messages_json(&[
            ChatMessage {
                role: Role::System,
                content: "be brief".into(),
            },
            ChatMessage {
                role: Role::User,
                content: "hi \"there\"".into(),
            },
        ]);
        assert_eq!(
            input,
            r#"[{"role":"system","parts":[{"type":"text","content":"be brief"}]},{"role":"user","parts":[{"type":"text","content":"hi \"there\""}]}]"#
        );
        assert_eq!(
            output_messages_json("ok", Some("stop")),
            r#"[{"role":"assistant","parts":[{"type":"text","content":"ok"}],"finish_reason":"stop"}]"#
        );
    }
}
