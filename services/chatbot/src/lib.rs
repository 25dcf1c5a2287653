//! The ShopMax chatbot (Bangalore): one customer question, one trace. It scores the request with
//! the fraud service and retrieves products from the recommendation service at the same time,
//! then asks the LLM for an answer grounded in those products.
//!
//! # Layout
//! - [`Config`] (`config.rs`): settings from the environment.
//! - [`AppState`], [`app`]: the state (built from the config as `main` does) and the router;
//!   `POST /v1/chat` (JSON or SSE), `/healthz`, `/readyz`.
//! - `routes.rs`: the handler; `identity.rs`: who is asking, and the baggage that says so;
//!   `answer.rs`: the fan-out, degradation and the LLM call; `stream.rs`: the SSE answer.
//! - [`AppError`] (`error.rs`): every failure and its JSON answer.
//! - [`downstream`]: the fraud and recommendation calls, behind traits for tests.
//! - `web.rs`: the chat page, served at `/`, and the relay of its spans (`POST /v1/traces`).
//! - `prompt`: the grounded prompt; `evaluation`: whether the answer kept to it.
//!
//! The request and reply types are [`contract::chat`]'s.

pub mod downstream;
mod prompt;

mod answer;
mod config;
mod error;
mod evaluation;
mod identity;
mod routes;
mod stream;
mod web;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use llm_client::LlmClient;
use telemetry::{PropagationPolicy, TracedClient};

pub use config::Config;
pub use error::AppError;

use downstream::{FraudScorer, HttpFraudScorer, HttpRecommender, Recommender};

/// Who this service is in telemetry: `service.name`, `service.version` and its site
/// (`geo.locality.name`).
pub const SERVICE: telemetry::ServiceInfo = telemetry::ServiceInfo {
    name: "chatbot",
    version: env!("CARGO_PKG_VERSION"),
    site: "Bangalore",
};

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

impl AppState {
    /// The state `main` runs with: the LLM and both downstream services over traced HTTP, as
    /// `config` says, propagating trace headers as `policy` allows.
    pub fn from_config(
        config: Config,
        policy: PropagationPolicy,
    ) -> Result<Self, llm_client::BuildError> {
        let http = TracedClient::new(reqwest::Client::new(), policy.clone());
        let llm = llm_client::OpenAiClient::new(config.llm.clone(), policy)?;
        Ok(Self {
            llm: Arc::new(llm),
            fraud: Arc::new(
                HttpFraudScorer::new(http.clone(), &config.fraud_url, config.downstream_timeout)
                    .with_max_body(config.downstream_max_body_bytes),
            ),
            recommender: Arc::new(
                HttpRecommender::new(http, &config.recommendation_url, config.downstream_timeout)
                    .with_max_body(config.downstream_max_body_bytes),
            ),
            config: Arc::new(config),
        })
    }
}

/// The chatbot's router. `/healthz`, `/readyz`, the chat page (`/`, `/app.js`, `/app.css`) and
/// the page's span relay (`POST /v1/traces`) sit outside the tracing layer.
pub fn app(state: AppState) -> Router {
    // The chatbot has no start-up work: it is ready as soon as it listens.
    let ready = Arc::new(AtomicBool::new(true));
    // The chatbot is the public edge: whom it trusts is its configuration's to say.
    let edge = state.config.edge.clone();
    let page = web::routes(
        &state.config.trace_ui_url,
        state.config.browser_traces_url.clone(),
    );
    service_kit::service_router(
        routes::api(state),
        telemetry::HttpServerLayer::new()
            .with_traceresponse(true)
            .edge(edge),
        ready,
    )
    // The chat page and its span relay sit outside the tracing layer, like the probes.
    .merge(page)
}
