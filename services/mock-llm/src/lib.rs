//! An OpenAI-compatible mock LLM for ShopMax: deterministic answers grounded only in the products
//! written into the prompt, real `o200k_base` token counts, hashing embeddings, realistic
//! latency and injectable faults, so the whole system runs and is tested offline.
//!
//! It stands in for an external provider, so it is deliberately not traced: no server layer, no
//! spans of its own. The callers' CLIENT spans are what a trace shows of it, as with OpenAI.
//!
//! # Endpoints
//! - `POST /v1/chat/completions`: plain or SSE-streamed (`stream`, `stream_options.include_usage`).
//! - `POST /v1/embeddings`: string, string array or token array input; `dimensions`,
//!   `encoding_format` (`float` or `base64`).
//! - `GET /v1/models`, `GET /v1/models/{id}`.
//! - `GET|POST /admin/faults`: queue 429, 500 or slow answers for the next N model requests.
//! - `GET /healthz`, `GET /readyz`.
//!
//! # Layout
//! - [`Config`] (`config.rs`): `MOCK_LLM_*` settings; [`AppState`] and [`app`]: the router.
//! - `chat`, `embeddings`, `admin`, `routes` (models, 404, 405): the handlers; `error`:
//!   OpenAI-format errors.
//! - `answer`: the grounded answer rules; `embedder`: the hashing embedder.
//! - `tokens`: tiktoken counting; `faults`: fault injection.

mod answer;
mod embedder;
mod error;
mod faults;
mod tokens;

mod admin;
mod chat;
mod config;
mod embeddings;
mod routes;
mod text;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
pub use config::Config;
pub use error::OpenAiError;
pub use faults::FaultMode;
pub use tokens::Tokenizers;

/// Largest request body accepted. Larger than the services' limit because prompts carry the
/// retrieved products and a conversation, as they would to a real provider.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The models `GET /v1/models` lists, with OpenAI's creation timestamps.
pub const MODELS: &[(&str, u64)] = &[
    ("gpt-4o-mini", 1_721_172_741),
    ("text-embedding-3-small", 1_705_948_997),
];

/// Who this service is in telemetry: `service.name`, `service.version` and its site
/// (`geo.locality.name`).
pub const SERVICE: telemetry::ServiceInfo = telemetry::ServiceInfo {
    name: "mock-llm",
    version: env!("CARGO_PKG_VERSION"),
    site: "local",
};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    tokenizers: Arc<Tokenizers>,
    faults: faults::Faults,
    ready: Arc<AtomicBool>,
    next_id: AtomicU64,
}

impl AppState {
    /// The state `main` runs with: loads the tokenizers (the slow part of start-up).
    pub fn from_config(config: Config) -> Result<Self, tokens::TokenizerError> {
        Ok(Self::with_tokenizers(config, Arc::new(Tokenizers::load()?)))
    }

    /// The state with tokenizers loaded elsewhere (tests share one copy).
    pub fn with_tokenizers(config: Config, tokenizers: Arc<Tokenizers>) -> Self {
        Self {
            inner: Arc::new(Inner {
                faults: faults::Faults::new(config.fault),
                config,
                tokenizers,
                // Everything slow happened before this point.
                ready: Arc::new(AtomicBool::new(true)),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The fault state (also driven by `POST /admin/faults`).
    pub fn faults(&self) -> &faults::Faults {
        &self.inner.faults
    }

    fn tokenizers(&self) -> &Tokenizers {
        &self.inner.tokenizers
    }

    /// A fresh id like OpenAI's: `prefix-` and 24 hex digits, unique within the process (the
    /// counter) and unlikely to repeat across restarts (the random part).
    fn new_id(&self, prefix: &str) -> String {
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        format!(
            "{prefix}-{:016x}{:08x}",
            rand::random::<u64>(),
            n & 0xffff_ffff
        )
    }
}

/// Seconds since the epoch, for `created`.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The router: the OpenAI endpoints, the fault admin, health probes. Untraced on purpose (see the
/// crate documentation).
pub fn app(state: AppState) -> Router {
    let ready = state.inner.ready.clone();
    Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/embeddings", post(embeddings::create))
        .route("/v1/models", get(routes::list_models))
        .route("/v1/models/{id}", get(routes::get_model))
        .route("/admin/faults", get(admin::show).post(admin::set))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
        .merge(service_kit::health_routes(ready))
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::{Arc, LazyLock};

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    static TOKENIZERS: LazyLock<Arc<Tokenizers>> =
        LazyLock::new(|| Arc::new(Tokenizers::load().expect("bundled vocabularies load")));

    /// The vocabularies, loaded once per test binary.
    pub(crate) fn tokenizers() -> Arc<Tokenizers> {
        TOKENIZERS.clone()
    }

    pub(crate) fn state(config: Config) -> AppState {
        AppState::with_tokenizers(config, tokenizers())
    }

    /// A raw response: status, headers and body bytes.
    pub(crate) struct Raw {
        pub(crate) status: StatusCode,
        pub(crate) headers: axum::http::HeaderMap,
        pub(crate) body: Vec<u8>,
    }

    impl Raw {
        pub(crate) fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).expect("JSON body")
        }
    }

    pub(crate) async fn send(router: Router, request: Request<Body>) -> Raw {
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        Raw {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn post_json(router: Router, path: &str, body: impl Into<Body>) -> Raw {
        let request = Request::post(path)
            .header("content-type", "application/json")
            .body(body.into())
            .expect("request");
        send(router, request).await
    }

    pub(crate) async fn get_path(router: Router, path: &str) -> Raw {
        send(
            router,
            Request::get(path).body(Body::empty()).expect("request"),
        )
        .await
    }

    /// Asserts an OpenAI-format error and returns its `error` object.
    pub(crate) fn assert_openai_error(raw: &Raw, status: u16) -> serde_json::Value {
        assert_eq!(
            raw.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&raw.body)
        );
        let json = raw.json();
        let error = json["error"].clone();
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{json}"
        );
        assert!(error["type"].is_string(), "{json}");
        assert!(error.get("code").is_some(), "{json}");
        error
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use env_config::FromEnv as _;

    use super::test_support::*;
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        env_config::from_pairs(pairs)
    }

    #[test]
    fn config_defaults() {
        let config = Config::from_lookup(&lookup(&[])).expect("defaults");
        assert_eq!(
            config,
            Config {
                port: 8090,
                ttft: Duration::from_millis(250),
                token_delay: Duration::from_millis(12),
                embed_delay: Duration::from_millis(15),
                slow: Duration::from_millis(15_000),
                fault: FaultMode::None,
            }
        );
    }

    #[test]
    fn config_reads_every_variable() {
        let config = Config::from_lookup(&lookup(&[
            ("MOCK_LLM_PORT", "9000"),
            ("MOCK_LLM_TTFT_MS", "1"),
            ("MOCK_LLM_TOKEN_DELAY_MS", "2"),
            ("MOCK_LLM_EMBED_DELAY_MS", "3"),
            ("MOCK_LLM_SLOW_MS", "4"),
            ("MOCK_LLM_FAULT", "429"),
        ]))
        .expect("valid");
        assert_eq!(config.port, 9000);
        assert_eq!(config.ttft, Duration::from_millis(1));
        assert_eq!(config.token_delay, Duration::from_millis(2));
        assert_eq!(config.embed_delay, Duration::from_millis(3));
        assert_eq!(config.slow, Duration::from_millis(4));
        assert_eq!(config.fault, FaultMode::RateLimited);
    }

    #[rstest::rstest]
    #[case("MOCK_LLM_PORT", "70000")]
    #[case("MOCK_LLM_TTFT_MS", "-1")]
    #[case("MOCK_LLM_FAULT", "503")]
    fn config_rejects_typos(#[case] key: &str, #[case] value: &str) {
        let err = Config::from_lookup(&lookup(&[(key, value)])).expect_err("invalid");
        assert_eq!(err.key, key);
    }

    #[tokio::test]
    async fn models_lists_the_chat_and_embedding_models() {
        let raw = get_path(app(state(Config::for_tests())), "/v1/models").await;
        assert_eq!(raw.status.as_u16(), 200);
        let json = raw.json();
        assert_eq!(json["object"], "list");
        let ids: Vec<&str> = json["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|m| m["id"].as_str().expect("id"))
            .collect();
        assert_eq!(ids, ["gpt-4o-mini", "text-embedding-3-small"]);
        assert_eq!(json["data"][0]["object"], "model");
    }

    #[tokio::test]
    async fn models_returns_one_model_or_404() {
        let router = app(state(Config::for_tests()));
        let raw = get_path(router.clone(), "/v1/models/gpt-4o-mini").await;
        assert_eq!(raw.json()["id"], "gpt-4o-mini");
        let raw = get_path(router, "/v1/models/gpt-9").await;
        assert_eq!(assert_openai_error(&raw, 404)["code"], "model_not_found");
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_get_openai_errors() {
        let router = app(state(Config::for_tests()));
        let raw = get_path(router.clone(), "/v1/nothing").await;
        assert_eq!(
            assert_openai_error(&raw, 404)["type"],
            "invalid_request_error"
        );
        let raw = get_path(router, "/v1/chat/completions").await;
        assert_openai_error(&raw, 405);
    }

    #[tokio::test]
    async fn health_probes_answer() {
        let router = app(state(Config::for_tests()));
        assert_eq!(
            get_path(router.clone(), "/healthz").await.status.as_u16(),
            200
        );
        assert_eq!(get_path(router, "/readyz").await.status.as_u16(), 200);
    }

    #[test]
    fn ids_are_unique() {
        let state = state(Config::for_tests());
        let a = state.new_id("chatcmpl");
        let b = state.new_id("chatcmpl");
        assert_ne!(a, b);
        assert!(
            a.starts_with("chatcmpl-") && a.len() == "chatcmpl-".len() + 24,
            "{a}"
        );
    }
}
