//! The ShopMax chatbot (Bangalore): one customer question, one trace. It scores the request with
//! the fraud service and retrieves products from the recommendation service at the same time,
//! then asks the LLM for an answer grounded in those products.
//!
//! # Layout
//! - [`Config`]: settings from the environment.
//! - [`AppState`], [`app`]: the router; `POST /v1/chat` (JSON or SSE), `/healthz`, `/readyz`.
//! - [`downstream`]: the fraud and recommendation calls, behind traits for tests.
//! - [`prompt`]: the grounded prompt.
//! - `chat` (private): the handler: baggage, fan-out, degradation, the LLM call.

pub mod downstream;
pub mod prompt;

mod chat;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use llm_client::{LlmClient, LlmConfig};
use service_kit::env::{ConfigError, get, parse_or};

use downstream::{FraudScorer, Recommender};

pub use chat::{ChatReply, ChatRequest, MAX_QUESTION_CHARS};

/// Chatbot settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen port (`PORT`, 8080).
    pub port: u16,
    /// Fraud service base URL (`FRAUD_URL`, `http://localhost:8082`).
    pub fraud_url: String,
    /// Recommendation service base URL (`RECOMMENDATION_URL`, `http://localhost:8081`).
    pub recommendation_url: String,
    /// Deadline of each downstream call (`CHATBOT_DOWNSTREAM_TIMEOUT_MS`, 3000).
    pub downstream_timeout: Duration,
    /// Products put in the prompt (`CHATBOT_TOP_K`, 3).
    pub top_k: usize,
    /// Longest answer in tokens (`CHATBOT_MAX_ANSWER_TOKENS`, 256).
    pub max_answer_tokens: u32,
    /// Baggage `shopmax.channel` when the caller sent none (`CHATBOT_CHANNEL`, `web`).
    pub channel: String,
    /// Answer when the fraud service is down (`CHATBOT_FRAUD_FAIL_OPEN`, true): questions are
    /// read-only, so refusing every customer during a fraud outage costs more than it saves.
    pub fraud_fail_open: bool,
    /// The LLM client's settings (`LLM_*`).
    pub llm: LlmConfig,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&service_kit::env::process())
    }

    /// Reads variables through `lookup`.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let top_k = parse_or(lookup, "CHATBOT_TOP_K", 3usize)?;
        if !(1..=10).contains(&top_k) {
            return Err(ConfigError {
                key: "CHATBOT_TOP_K".into(),
                reason: "must be between 1 and 10".into(),
            });
        }
        Ok(Self {
            port: parse_or(lookup, "PORT", 8080u16)?,
            fraud_url: get(lookup, "FRAUD_URL").unwrap_or_else(|| "http://localhost:8082".into()),
            recommendation_url: get(lookup, "RECOMMENDATION_URL")
                .unwrap_or_else(|| "http://localhost:8081".into()),
            downstream_timeout: Duration::from_millis(positive(
                lookup,
                "CHATBOT_DOWNSTREAM_TIMEOUT_MS",
                3000,
            )?),
            top_k,
            max_answer_tokens: u32::try_from(positive(lookup, "CHATBOT_MAX_ANSWER_TOKENS", 256)?)
                .map_err(|_| ConfigError {
                key: "CHATBOT_MAX_ANSWER_TOKENS".into(),
                reason: "is too large".into(),
            })?,
            channel: get(lookup, "CHATBOT_CHANNEL").unwrap_or_else(|| "web".into()),
            fraud_fail_open: service_kit::env::bool_or(lookup, "CHATBOT_FRAUD_FAIL_OPEN", true)?,
            llm: LlmConfig::from_lookup(lookup).map_err(|e| ConfigError {
                key: e.key,
                reason: e.reason,
            })?,
        })
    }
}

/// A whole number above zero: a zero timeout or token budget would fail every request.
fn positive(
    lookup: &dyn Fn(&str) -> Option<String>,
    key: &str,
    default: u64,
) -> Result<u64, ConfigError> {
    match parse_or(lookup, key, default)? {
        0 => Err(ConfigError {
            key: key.into(),
            reason: "must be greater than 0".into(),
        }),
        value => Ok(value),
    }
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The LLM.
    pub llm: Arc<dyn LlmClient>,
    /// The fraud service.
    pub fraud: Arc<dyn FraudScorer>,
    /// The recommendation service.
    pub recommender: Arc<dyn Recommender>,
    /// Settings.
    pub config: Arc<Config>,
}

/// The chatbot's router. `/healthz` and `/readyz` sit outside the tracing layer.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/chat", post(chat::chat))
        .layer(service_kit::limits())
        .layer(telemetry::HttpServerLayer::new().with_traceresponse(true))
        .with_state(state);
    // The chatbot has no start-up work: it is ready as soon as it listens.
    service_kit::with_json_fallbacks(
        api.merge(service_kit::health_routes(Arc::new(AtomicBool::new(true)))),
    )
}
