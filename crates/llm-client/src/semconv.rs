//! Every OpenTelemetry GenAI semantic-convention name this crate records, in one place, because
//! the GenAI conventions are still in development and names move between releases.
//!
//! Names follow the GenAI conventions (status: Development) as published in
//! `open-telemetry/semantic-conventions-genai` (`docs/gen-ai/gen-ai-spans.md`,
//! `gen-ai-metrics.md`), which superseded the `gen_ai` pages of the main semantic-conventions
//! repository after v1.36. The `llm.*` names are not OpenTelemetry conventions: they are the seed
//! article's attributes, kept so its dashboards work unchanged. Nothing else in the crate spells
//! an attribute, event or metric name.

// ---- Instrumentation scope -------------------------------------------------------------------

/// Meter scope of this crate's metrics.
pub const METER_SCOPE: &str = "shopmax-llm-client";

/// The `tracing` name of the GenAI span, seen only by local log formatters; the exported name
/// comes from its `otel.name` field: `{gen_ai.operation.name} {gen_ai.request.model}`.
pub const TRACING_SPAN_NAME: &str = "llm_client.operation";

// ---- Span and metric attributes (GenAI registry) ---------------------------------------------

/// `gen_ai.operation.name`: `chat` or `embeddings` here.
pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
/// `gen_ai.provider.name` (replaced `gen_ai.system` in semconv 1.37).
pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
/// `gen_ai.request.model`.
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
/// `gen_ai.conversation.id`: the conversation (ShopMax's session) the call belongs to.
pub const GEN_AI_CONVERSATION_ID: &str = "gen_ai.conversation.id";
/// `gen_ai.request.stream` (bool): whether the response was asked for as a stream.
pub const GEN_AI_REQUEST_STREAM: &str = "gen_ai.request.stream";
/// `gen_ai.output.type`: the kind of output asked for; `text` here.
pub const GEN_AI_OUTPUT_TYPE: &str = "gen_ai.output.type";
/// `gen_ai.request.temperature` (double).
pub const GEN_AI_REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
/// `gen_ai.request.max_tokens` (int).
pub const GEN_AI_REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
/// `gen_ai.response.model`.
pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
/// `gen_ai.response.id`.
pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
/// `gen_ai.response.finish_reasons` (string array).
pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
/// `gen_ai.response.time_to_first_chunk`: seconds from issuing the request to the first chunk
/// of a streamed response (double).
pub const GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";
/// `gen_ai.usage.input_tokens`.
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// `gen_ai.usage.output_tokens`.
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// `gen_ai.usage.cache_read.input_tokens`: of the input tokens, those served from the
/// provider's prompt cache (recorded only when the provider reports it).
pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
/// `gen_ai.embeddings.dimension.count`: length of each returned vector.
pub const GEN_AI_EMBEDDINGS_DIMENSION_COUNT: &str = "gen_ai.embeddings.dimension.count";
/// `gen_ai.input.messages`: the prompt as JSON, opt-in (content capture only).
pub const GEN_AI_INPUT_MESSAGES: &str = "gen_ai.input.messages";
/// `gen_ai.output.messages`: the completion as JSON, opt-in (content capture only).
pub const GEN_AI_OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
/// `gen_ai.token.type` on `gen_ai.client.token.usage`.
pub const GEN_AI_TOKEN_TYPE: &str = "gen_ai.token.type";

/// `server.address` (stable).
pub const SERVER_ADDRESS: &str = "server.address";
/// `server.port` (stable).
pub const SERVER_PORT: &str = "server.port";
/// `error.type` (stable).
pub const ERROR_TYPE: &str = "error.type";

// ---- Cost (open proposal: semantic-conventions-genai PR #443, 2026-08) ------------------------
//
// No GenAI cost convention is merged. These follow the proposal in
// open-telemetry/semantic-conventions-genai PR #443 ("Add per-operation cost conventions",
// after issue #287): attributes on inference spans only, so a parent never double-counts its
// children, and a metric. If the names change when it merges, they change here only.

/// `gen_ai.usage.cost.amount` (double): what the operation cost, in
/// [`GEN_AI_USAGE_COST_CURRENCY`].
pub const GEN_AI_USAGE_COST_AMOUNT: &str = "gen_ai.usage.cost.amount";
/// `gen_ai.usage.cost.currency`: ISO 4217 code; set whenever the amount is.
pub const GEN_AI_USAGE_COST_CURRENCY: &str = "gen_ai.usage.cost.currency";
/// `gen_ai.usage.cost.source`: `provider` when the response carried the cost, `local` when
/// the recorder computed it from tokens and its price table (always ours).
pub const GEN_AI_USAGE_COST_SOURCE: &str = "gen_ai.usage.cost.source";
/// [`GEN_AI_USAGE_COST_SOURCE`] of a cost computed here.
pub const COST_SOURCE_LOCAL: &str = "local";
/// Counter of cost per operation, with the currency and source as attributes.
pub const METRIC_CLIENT_OPERATION_COST: &str = "gen_ai.client.operation.cost";
/// Unit of [`METRIC_CLIENT_OPERATION_COST`]: money, in the currency its attribute names.
pub const UNIT_COST: &str = "{currency}";
/// The request span's total: every priced LLM call behind one answer, across services. Ours,
/// not `gen_ai.*`: the proposal keeps cost off non-inference spans so sums never double-count.
pub const SHOPMAX_REQUEST_COST_AMOUNT: &str = "shopmax.request.cost.amount";
/// Currency of [`SHOPMAX_REQUEST_COST_AMOUNT`].
pub const SHOPMAX_REQUEST_COST_CURRENCY: &str = "shopmax.request.cost.currency";

// ---- Attribute values --------------------------------------------------------------------------

/// `gen_ai.operation.name` of a chat completion.
pub const OPERATION_CHAT: &str = "chat";
/// `gen_ai.operation.name` of an embeddings call.
pub const OPERATION_EMBEDDINGS: &str = "embeddings";
/// `gen_ai.output.type` of a text answer.
pub const OUTPUT_TYPE_TEXT: &str = "text";
/// `gen_ai.token.type` of prompt tokens.
pub const TOKEN_TYPE_INPUT: &str = "input";
/// `gen_ai.token.type` of completion tokens.
pub const TOKEN_TYPE_OUTPUT: &str = "output";
/// `error.type` of an operation its caller abandoned (a stream dropped before its end, a
/// future dropped before it resolved).
pub const ERROR_TYPE_CANCELLED: &str = "cancelled";

// ---- The seed article's attributes (not OpenTelemetry conventions) -----------------------------

/// `llm.model`: the model that answered, else the one asked for.
pub const LLM_MODEL: &str = "llm.model";
/// `llm.prompt_tokens`.
pub const LLM_PROMPT_TOKENS: &str = "llm.prompt_tokens";
/// `llm.completion_tokens`.
pub const LLM_COMPLETION_TOKENS: &str = "llm.completion_tokens";
/// `llm.latency_ms`: the whole call, retries and backoff included, in whole milliseconds.
pub const LLM_LATENCY_MS: &str = "llm.latency_ms";

// ---- Span events (ours; the GenAI conventions define none for retries) -------------------------

/// Event on the GenAI span before each retry. Kept out of the `gen_ai.*` namespace, which the
/// conventions own, so a future official name cannot clash with ours.
pub const LLM_RETRY_EVENT: &str = "llm.retry";
/// On [`LLM_RETRY_EVENT`]: the resend count of the attempt about to be made (1 for the first
/// retry), matching `http.request.resend_count` on that attempt's HTTP span.
pub const LLM_RETRY_ATTEMPT: &str = "llm.retry.attempt";
/// On [`LLM_RETRY_EVENT`]: how long we wait before it, in milliseconds.
pub const LLM_RETRY_WAIT_MS: &str = "llm.retry.wait_ms";
/// On [`LLM_RETRY_EVENT`]: whether the wait came from the server's `Retry-After`.
pub const LLM_RETRY_AFTER_HONOURED: &str = "llm.retry.retry_after";

// ---- Metrics ----------------------------------------------------------------------------------

/// Histogram of tokens per operation, `{token}`, split by [`GEN_AI_TOKEN_TYPE`].
pub const METRIC_CLIENT_TOKEN_USAGE: &str = "gen_ai.client.token.usage";
/// Histogram of operation duration in seconds, with [`ERROR_TYPE`] on failure.
pub const METRIC_CLIENT_OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
/// Histogram of time to the first chunk of a streamed response, seconds (streaming only).
pub const METRIC_CLIENT_TIME_TO_FIRST_CHUNK: &str = "gen_ai.client.operation.time_to_first_chunk";

/// Histogram of the time between consecutive chunks of a streamed response, seconds: recorded
/// for each chunk after the first, from the end of the previous chunk to the end of this one.
pub const METRIC_CLIENT_TIME_PER_OUTPUT_CHUNK: &str =
    "gen_ai.client.operation.time_per_output_chunk";

/// Unit of [`METRIC_CLIENT_TOKEN_USAGE`].
pub const UNIT_TOKEN: &str = "{token}";
/// Unit of the duration histograms.
pub const UNIT_SECONDS: &str = "s";

/// Bucket boundaries the conventions recommend for [`METRIC_CLIENT_TOKEN_USAGE`].
pub const TOKEN_USAGE_BUCKETS: &[f64] = &[
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

/// Bucket boundaries (seconds) the conventions recommend for [`METRIC_CLIENT_OPERATION_DURATION`]
/// and [`METRIC_CLIENT_TIME_TO_FIRST_CHUNK`].
pub const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
