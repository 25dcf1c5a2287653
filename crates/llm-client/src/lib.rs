//! An OpenAI-compatible LLM client: chat completions (plain and SSE-streamed) and embeddings, so
//! one binary works against OpenAI, Ollama, vLLM or the ShopMax mock by base URL, key and model.
//! Every call is a CLIENT span per the OpenTelemetry GenAI semantic conventions, with the seed
//! article's `llm.*` attributes alongside.
//!
//! Services depend on the [`LlmClient`] and [`EmbeddingClient`] traits, so tests swap in fakes.
//!
//! # Layout
//! - [`LlmConfig`]: settings from the environment (through `env_config`); the key is an
//!   [`ApiKey`], never printed.
//! - [`LlmClient`], [`EmbeddingClient`]: the traits; [`OpenAiClient`] implements both.
//! - [`pricing`]: the price table, and what a call's tokens cost.
//! - [`semconv`]: every GenAI attribute and metric name, in one place (the conventions move).
//! - [`LlmError`]: what can go wrong, with a low-cardinality `error.type`.
//! - [`Backoff`]: exponential backoff with jitter, for the client's retries and services' own.
//! - Inside: `openai` (requests, attempts and retries), `stream` (the caller's SSE event stream,
//!   decoded by `sse`), `parse` and `wire` (bodies on the wire), `instrument` (spans, metrics).

pub mod pricing;
pub mod semconv;

mod instrument;
mod openai;
mod parse;
mod retry;
mod sse;
mod stream;
mod wire;

use env_config::FromEnv;
use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use contract::Cost;
pub use openai::{BuildError, OpenAiClient};
pub use pricing::{PriceTable, TokenCounts};
pub use retry::Backoff;

/// An API key. It has no `Display`, and its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// Base URL up to and including `/v1`, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Bearer key; `None` for servers that need none (Ollama, the mock).
    pub api_key: Option<ApiKey>,
    /// Chat model, e.g. `gpt-4o-mini`.
    pub chat_model: String,
    /// Embedding model, e.g. `text-embedding-3-small`.
    pub embedding_model: String,
    /// `gen_ai.provider.name`, e.g. `openai`.
    pub provider_name: String,
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// Retries after the first attempt on 429, 5xx and transport errors.
    pub max_retries: u32,
    /// First backoff; doubles per retry (with jitter) unless the server sends Retry-After.
    pub initial_backoff: Duration,
    /// Longest wait between attempts, also the cap on an honoured Retry-After.
    pub max_backoff: Duration,
    /// Record prompt and completion text on spans
    /// (`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`).
    pub capture_content: bool,
    /// Whether spans also carry the seed article's `llm.*` attributes: yes by default; no when
    /// `OTEL_SEMCONV_STABILITY_OPT_IN` lists `gen_ai_latest_experimental` (see
    /// [`article_attributes_from_opt_in`]).
    pub article_attributes: bool,
    /// Model prices, for the cost of each call (see [`pricing`]).
    pub prices: PriceTable,
    /// Why the configured prices could not be used (then nothing is priced); the client logs
    /// it as a warning when it starts, since a cost setting must never stop a service.
    pub prices_warning: Option<String>,
}

impl FromEnv for LlmConfig {
    /// Reads `LLM_BASE_URL` (default `http://localhost:8090/v1`, the mock), `LLM_API_KEY`
    /// (or `OPENAI_API_KEY`), `LLM_MODEL` (`gpt-4o-mini`), `LLM_EMBEDDING_MODEL`
    /// (`text-embedding-3-small`), `LLM_PROVIDER` (`openai`), `LLM_TIMEOUT_MS` (30000, above
    /// zero), `LLM_MAX_RETRIES` (2), `LLM_INITIAL_BACKOFF_MS` (200), `LLM_MAX_BACKOFF_MS` (5000)
    /// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` (false), and the price table:
    /// [`pricing::DEFAULT_PRICES`] under `LLM_PRICES_FILE` (a JSON file) under `LLM_PRICES`
    /// (JSON).
    ///
    /// Problems are recorded on `env`, so a service reads these settings with its own reader and
    /// judges them all at once when it finishes.
    fn read(env: &mut env_config::Reader<'_>) -> Self {
        let base_url = env.http_url_or("LLM_BASE_URL", "http://localhost:8090/v1");
        let (prices, prices_warning) = read_prices(env);
        Self {
            base_url,
            api_key: env
                .get("LLM_API_KEY")
                .or_else(|| env.get("OPENAI_API_KEY"))
                .map(ApiKey::new),
            chat_model: env.string_or("LLM_MODEL", "gpt-4o-mini"),
            embedding_model: env.string_or("LLM_EMBEDDING_MODEL", "text-embedding-3-small"),
            provider_name: env.string_or("LLM_PROVIDER", "openai"),
            timeout: env.positive_millis_or("LLM_TIMEOUT_MS", 30_000),
            max_retries: env.parse_or("LLM_MAX_RETRIES", 2u32),
            initial_backoff: env.millis_or("LLM_INITIAL_BACKOFF_MS", 200),
            max_backoff: env.millis_or("LLM_MAX_BACKOFF_MS", 5_000),
            capture_content: env
                .bool_or("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", false),
            article_attributes: article_attributes_from_opt_in(
                env.get("OTEL_SEMCONV_STABILITY_OPT_IN").as_deref(),
            ),
            prices,
            prices_warning,
        }
    }
}

/// The `OTEL_SEMCONV_STABILITY_OPT_IN` token of the GenAI transition plan.
pub const GEN_AI_LATEST_EXPERIMENTAL: &str = "gen_ai_latest_experimental";

/// Whether to keep the seed article's `llm.*` attributes, from `OTEL_SEMCONV_STABILITY_OPT_IN`
/// (a comma-separated list).
///
/// The GenAI conventions' transition plan, which the GenAI instrumentations of Python, .NET
/// and JavaScript follow: an instrumentation keeps emitting what it emitted by default, and
/// `gen_ai_latest_experimental` makes it emit the latest GenAI conventions and not the old
/// names. What ShopMax emitted first, because the article names them, is `llm.*`; it has emitted
/// the latest `gen_ai.*` alongside from the start. So by default spans carry both, and
/// `gen_ai_latest_experimental` drops `llm.*`. Other tokens (`http`, `database/dup`, …) are for
/// other conventions and are ignored here.
pub fn article_attributes_from_opt_in(opt_in: Option<&str>) -> bool {
    !opt_in
        .unwrap_or_default()
        .split(',')
        .any(|token| token.trim() == GEN_AI_LATEST_EXPERIMENTAL)
}

/// The price table from `LLM_PRICES_FILE` and `LLM_PRICES` over the defaults, and why it could
/// not be read (then it is empty).
fn read_prices(env: &env_config::Reader<'_>) -> (PriceTable, Option<String>) {
    let path = env.get("LLM_PRICES_FILE").filter(|p| !p.trim().is_empty());
    let file = match &path {
        None => None,
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) => {
                return (
                    PriceTable::default(),
                    Some(format!(
                        "LLM_PRICES_FILE ({path}) cannot be read: {e}; no LLM call will be priced"
                    )),
                );
            }
        },
    };
    let inline = env.get("LLM_PRICES");
    PriceTable::layered(
        path.as_deref().zip(file.as_deref()),
        inline.as_deref().filter(|t| !t.trim().is_empty()),
    )
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The customer.
    User,
    /// The model.
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Author.
    pub role: Role,
    /// Text.
    pub content: String,
}

/// A chat completion request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Most tokens to generate.
    pub max_tokens: Option<u32>,
    /// The conversation this call belongs to (`gen_ai.conversation.id`), when there is one.
    pub conversation_id: Option<String>,
}

/// Token counts as the server reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Sum of both.
    pub total_tokens: u64,
    /// Of `prompt_tokens`, those the provider served from its prompt cache, when it says
    /// (`prompt_tokens_details.cached_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_prompt_tokens: Option<u64>,
}

/// A finished chat completion.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The server's response id.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// The answer text.
    pub content: String,
    /// Why generation stopped, e.g. `stop`.
    pub finish_reason: Option<String>,
    /// Token usage.
    pub usage: Usage,
    /// What the call cost, when its model has a price (see [`pricing`]).
    pub cost: Option<Cost>,
    /// The GenAI span of the call, so what judges the answer later (an evaluation event) can
    /// be parented to it; `None` from clients that make no span.
    pub span_context: Option<opentelemetry::trace::SpanContext>,
}

/// One event of a streamed completion.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// More answer text.
    Delta(String),
    /// The end: the whole response, with usage when the server sent it.
    Done(Box<ChatResponse>),
}

/// A streamed completion.
pub type ChatStream =
    Pin<Box<dyn futures_core::Stream<Item = Result<StreamEvent, LlmError>> + Send>>;

/// Embeddings for a batch of inputs, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per input.
    pub vectors: Vec<Vec<f32>>,
    /// The model that embedded them.
    pub model: String,
    /// Input tokens, when reported.
    pub input_tokens: Option<u64>,
    /// What the call cost, when its model has a price and the tokens were reported.
    pub cost: Option<Cost>,
}

/// What can go wrong talking to the LLM server.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// An attempt ran past its timeout.
    #[error("the LLM server did not answer in time")]
    Timeout,
    /// The server could not be reached.
    #[error("the LLM server is unreachable")]
    Unreachable,
    /// 429 after every retry.
    #[error("the LLM server is rate limiting us")]
    RateLimited,
    /// Another non-success status after every retry (or one not worth retrying).
    #[error("the LLM server answered {status}")]
    Status {
        /// The HTTP status.
        status: u16,
    },
    /// The answer could not be understood.
    #[error("the LLM server's answer was malformed: {0}")]
    InvalidResponse(String),
}

impl LlmError {
    /// Low-cardinality `error.type` for spans and metrics.
    pub fn error_type(&self) -> String {
        match self {
            Self::Timeout => "timeout".into(),
            Self::Unreachable => "unreachable".into(),
            Self::RateLimited => "429".into(),
            Self::Status { status } => status.to_string(),
            Self::InvalidResponse(_) => "invalid_response".into(),
        }
    }

    /// A transport failure, sending or reading: a timeout, or else unreachable.
    pub(crate) fn from_transport(error: &reqwest::Error) -> Self {
        if error.is_timeout() {
            Self::Timeout
        } else {
            Self::Unreachable
        }
    }
}

/// Chat completions.
#[async_trait::async_trait]
pub trait LlmClient: Send + Sync + fmt::Debug {
    /// The configured chat model.
    fn model(&self) -> &str;
    /// One completion.
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError>;
    /// One completion, streamed.
    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError>;
}

/// Embeddings.
#[async_trait::async_trait]
pub trait EmbeddingClient: Send + Sync + fmt::Debug {
    /// The configured embedding model.
    fn model(&self) -> &str;
    /// Embeds `inputs` in one request.
    async fn embed(&self, inputs: &[String]) -> Result<Embeddings, LlmError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_to_the_mock() {
        let config = LlmConfig::from_lookup(&|_| None).expect("config");
        assert_eq!(config.base_url, "http://localhost:8090/v1");
        assert_eq!(config.api_key, None);
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(config.max_retries, 2);
        assert_eq!(config.initial_backoff, Duration::from_millis(200));
        assert_eq!(config.max_backoff, Duration::from_secs(5));
        assert!(!config.capture_content);
        assert!(config.article_attributes);
        assert!(!config.prices.is_empty());
    }

    #[rstest::rstest]
    #[case::unset(None, true)]
    #[case::other_categories(Some("http,database/dup"), true)]
    #[case::latest_genai(Some("gen_ai_latest_experimental"), false)]
    #[case::in_a_list_with_spaces(Some("http, gen_ai_latest_experimental "), false)]
    #[case::not_a_prefix_match(Some("gen_ai_latest_experimental_v2"), true)]
    fn the_articles_llm_attributes_stay_unless_the_latest_genai_conventions_are_opted_in(
        #[case] opt_in: Option<&str>,
        #[case] kept: bool,
    ) {
        assert_eq!(article_attributes_from_opt_in(opt_in), kept);
    }

    #[test]
    fn an_unreadable_price_file_is_a_warning_and_prices_nothing() {
        let lookup = env_config::from_pairs(&[("LLM_PRICES_FILE", "/nonexistent/prices.json")]);
        let config = LlmConfig::from_lookup(&lookup).expect("a price file is never fatal");
        assert!(config.prices.is_empty());
        let warning = config.prices_warning.expect("a warning");
        assert!(warning.contains("/nonexistent/prices.json"), "{warning}");
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        for (key, value) in [
            ("LLM_BASE_URL", "ftp://x"),
            ("LLM_TIMEOUT_MS", "0"),
            ("LLM_TIMEOUT_MS", "soon"),
            ("LLM_MAX_RETRIES", "-1"),
            ("LLM_INITIAL_BACKOFF_MS", "x"),
            ("LLM_MAX_BACKOFF_MS", "x"),
            ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "yes"),
        ] {
            let lookup = env_config::from_pairs(&[(key, value)]);
            let error = LlmConfig::from_lookup(&lookup).expect_err(key);
            assert_eq!(error.key, key);
        }
    }

    #[test]
    fn a_service_reader_collects_llm_problems_with_its_own() {
        let lookup = env_config::from_pairs(&[("LLM_TIMEOUT_MS", "0"), ("PORT", "x")]);
        let mut env = env_config::Reader::new(&lookup);
        let _port = env.parse_or("PORT", 8080u16);
        let config = LlmConfig::read(&mut env);
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(env.into_warnings().len(), 2);
    }
}
