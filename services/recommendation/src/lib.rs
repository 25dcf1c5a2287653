//! ShopMax recommendation service (Mumbai): embeds the catalog once, then answers each query
//! with the nearest products by cosine similarity.
//!
//! `POST /v1/recommend` takes `{query, top_k?}` and answers `{products, related,
//! embedding_model}`. A request's trace shows the query's `embeddings {model}` CLIENT span (made
//! by `llm-client`) and a `retrieval catalog` INTERNAL span for the vector search.
//!
//! Start-up never waits for the LLM server: the catalog is embedded by a background task that
//! retries with backoff until it succeeds; until then `/readyz` and `/v1/recommend` answer 503,
//! so Kubernetes keeps the pod out of rotation and a caller sees a clear `not_ready`.
//!
//! # Layout
//! - [`Config`] (`config.rs`): settings from the environment, the LLM client's included.
//! - [`AppState`], [`app`]: the state and the router; API routes traced, health probes not.
//! - [`AppState::spawn_indexing`]: the background embedding of the catalog, with retries.
//! - `routes.rs`: the handler and the traced vector search; [`AppError`] (`error.rs`): its
//!   failures as JSON answers.
//! - `index`: the normalized vector index and the batched, traced build.

mod config;
mod error;
mod index;
mod routes;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use catalog::{Catalog, Product};
use llm_client::{Backoff, EmbeddingClient, LlmError};

pub use config::Config;
pub use error::AppError;
use index::VectorIndex;

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) catalog: Catalog,
    pub(crate) texts: Vec<String>,
    pub(crate) embedder: Arc<dyn EmbeddingClient>,
    pub(crate) index: OnceLock<VectorIndex>,
    pub(crate) ready: Arc<AtomicBool>,
    pub(crate) embed_batch: usize,
    pub(crate) embed_timeout: Duration,
    pub(crate) index_retry_initial: Duration,
    pub(crate) index_retry_max: Duration,
    pub(crate) capture_content: bool,
    pub(crate) faults: service_kit::Faults,
}

/// Who this service is in telemetry: `service.name`, `service.version` and its site
/// (`geo.locality.name`).
pub const SERVICE: telemetry::ServiceInfo = telemetry::ServiceInfo {
    name: "recommendation",
    version: env!("CARGO_PKG_VERSION"),
    site: "Mumbai",
};

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub(crate) shared: Arc<Shared>,
}

impl AppState {
    /// The state `main` runs with: the embedded catalog and an OpenAI-compatible embeddings
    /// client from the configuration, not ready until the catalog is embedded.
    pub fn from_config(
        config: &Config,
        policy: telemetry::PropagationPolicy,
    ) -> Result<Self, llm_client::BuildError> {
        let embedder = llm_client::OpenAiClient::new(config.llm.clone(), policy)?;
        Ok(Self::new(config, Catalog::embedded(), Arc::new(embedder)))
    }

    /// State over `catalog`, not ready until the catalog is embedded (see
    /// [`AppState::spawn_indexing`] and [`AppState::build_index`]).
    pub fn new(config: &Config, catalog: Catalog, embedder: Arc<dyn EmbeddingClient>) -> Self {
        let texts = catalog
            .products()
            .iter()
            .map(Product::embedding_text)
            .collect();
        Self {
            shared: Arc::new(Shared {
                catalog,
                texts,
                embedder,
                index: OnceLock::new(),
                ready: Arc::new(AtomicBool::new(false)),
                embed_batch: config.embed_batch,
                embed_timeout: config.embed_timeout,
                index_retry_initial: config.index_retry_initial,
                index_retry_max: config.index_retry_max,
                capture_content: config.llm.capture_content,
                faults: service_kit::Faults::new(config.faults),
            }),
        }
    }

    /// Whether the catalog is embedded and queries can be answered.
    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::Acquire)
    }

    pub(crate) fn index(&self) -> Option<&VectorIndex> {
        self.shared.index.get()
    }

    /// One attempt at embedding the whole catalog; on success the service becomes ready.
    pub async fn build_index(&self, attempt: u32) -> Result<(), LlmError> {
        if self.is_ready() {
            return Ok(());
        }
        let s = &self.shared;
        let index = index::build(
            s.embedder.as_ref(),
            &s.texts,
            s.embed_batch,
            s.embed_timeout,
            attempt,
        )
        .await?;
        let (dims, model) = (index.dims(), index.model().to_owned());
        // A concurrent build may have won; either index is equally good.
        let _ = s.index.set(index);
        s.ready.store(true, Ordering::Release);
        tracing::info!(
            catalog.size = s.texts.len(),
            catalog.embed.dimensions = dims,
            gen_ai.response.model = %model,
            attempt,
            "recommendation.index.ready"
        );
        Ok(())
    }

    /// Embeds the catalog in the background, retrying with exponential backoff (with jitter, so
    /// replicas restarted together do not retry in lockstep) until it succeeds: the LLM server
    /// may well start after us.
    pub fn spawn_indexing(&self) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        tokio::spawn(async move {
            let backoff = Backoff {
                initial: state.shared.index_retry_initial,
                max: state.shared.index_retry_max,
            };
            let mut attempt = 1u32;
            while state.build_index(attempt).await.is_err() {
                let wait = backoff.delay(attempt);
                tracing::info!(
                    attempt,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "recommendation.index.retry_scheduled"
                );
                tokio::time::sleep(wait).await;
                attempt = attempt.saturating_add(1);
            }
        })
    }
}

/// The service's router: `POST /v1/recommend` (traced, body-limited) and untraced health probes;
/// `/readyz` answers 503 until the catalog is embedded.
pub fn app(state: AppState) -> Router {
    let ready = state.shared.ready.clone();
    let api = state.shared.faults.clone().apply(routes::api(state));
    service_kit::service_router(api, telemetry::HttpServerLayer::new(), ready)
}

#[cfg(test)]
mod tests;
