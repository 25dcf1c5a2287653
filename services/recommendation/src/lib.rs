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
//! - [`Config`]: settings from the environment, the LLM client's included.
//! - [`AppState`], [`app`]: the router; API routes traced, health probes not.
//! - [`AppState::spawn_indexing`]: the background embedding of the catalog, with retries.
//! - [`index`]: the normalized vector index and the batched, traced build.
//! - [`AppError`]: this service's failures and their HTTP answers.

pub mod index;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use catalog::{Catalog, Product};
use llm_client::{EmbeddingClient, LlmConfig, LlmError};
use serde::{Deserialize, Serialize};
use service_kit::env::{ConfigError, parse_or};
use service_kit::{ApiError, ApiJson};
use tracing::field::Empty;

use index::VectorIndex;

/// Service settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PORT` (8081).
    pub port: u16,
    /// `RECOMMENDATION_EMBED_BATCH` (16): catalog texts per embeddings request at start-up.
    pub embed_batch: usize,
    /// `RECOMMENDATION_EMBED_TIMEOUT_MS` (10000): deadline of one embeddings call, the LLM
    /// client's own retries included, so a stuck server can never hang a request.
    pub embed_timeout: Duration,
    /// `RECOMMENDATION_INDEX_RETRY_INITIAL_MS` (500): first wait after a failed catalog
    /// embedding; doubles per failure.
    pub index_retry_initial: Duration,
    /// `RECOMMENDATION_INDEX_RETRY_MAX_MS` (30000): longest wait between catalog embedding
    /// attempts.
    pub index_retry_max: Duration,
    /// The LLM client's settings (`LLM_BASE_URL`, `LLM_EMBEDDING_MODEL`, ...).
    pub llm: LlmConfig,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&service_kit::env::process())
    }

    /// Reads settings through `lookup`; a malformed or out-of-range value is an error.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let invalid = |key: &str, reason: &str| ConfigError {
            key: key.to_owned(),
            reason: reason.to_owned(),
        };
        let embed_batch = parse_or(lookup, "RECOMMENDATION_EMBED_BATCH", 16usize)?;
        if !(1..=2048).contains(&embed_batch) {
            return Err(invalid("RECOMMENDATION_EMBED_BATCH", "must be 1..=2048"));
        }
        let millis = |key: &str, default: u64| -> Result<Duration, ConfigError> {
            match parse_or(lookup, key, default)? {
                0 => Err(invalid(key, "must be positive")),
                ms => Ok(Duration::from_millis(ms)),
            }
        };
        let index_retry_initial = millis("RECOMMENDATION_INDEX_RETRY_INITIAL_MS", 500)?;
        let index_retry_max = millis("RECOMMENDATION_INDEX_RETRY_MAX_MS", 30_000)?;
        if index_retry_initial > index_retry_max {
            return Err(invalid(
                "RECOMMENDATION_INDEX_RETRY_INITIAL_MS",
                "must not exceed RECOMMENDATION_INDEX_RETRY_MAX_MS",
            ));
        }
        Ok(Self {
            port: parse_or(lookup, "PORT", 8081)?,
            embed_batch,
            embed_timeout: millis("RECOMMENDATION_EMBED_TIMEOUT_MS", 10_000)?,
            index_retry_initial,
            index_retry_max,
            llm: LlmConfig::from_lookup(lookup).map_err(|e| ConfigError {
                key: e.key,
                reason: e.reason,
            })?,
        })
    }
}

/// This service's failures; each becomes an [`ApiError`] (JSON body with the trace id).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppError {
    /// The request itself is wrong (4xx).
    #[error("{}", .0.message)]
    Invalid(ApiError),
    /// The catalog is not embedded yet.
    #[error("the catalog index is still being built")]
    NotReady,
    /// The embedding model did not answer in time.
    #[error("the embedding model did not answer in time")]
    UpstreamTimeout,
    /// The embedding model failed.
    #[error("the embedding model failed ({0})")]
    Upstream(String),
}

impl From<LlmError> for AppError {
    fn from(e: LlmError) -> Self {
        match e {
            LlmError::Timeout => Self::UpstreamTimeout,
            // Only the low-cardinality type leaves the service: an upstream message may carry
            // details of a third party's API that are none of the caller's business.
            other => Self::Upstream(other.error_type()),
        }
    }
}

impl From<ApiError> for AppError {
    fn from(e: ApiError) -> Self {
        Self::Invalid(e)
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let message = e.to_string();
        let (status, code) = match e {
            AppError::Invalid(e) => return e,
            AppError::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            AppError::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            AppError::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_error"),
        };
        ApiError::new(status, code, message)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let not_ready = self == Self::NotReady;
        let mut response = ApiError::from(self).into_response();
        if not_ready {
            // Catalog embedding retries back off to seconds; tell well-behaved callers so.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
        }
        response
    }
}

#[derive(Debug)]
struct Shared {
    catalog: Catalog,
    texts: Vec<String>,
    embedder: Arc<dyn EmbeddingClient>,
    index: OnceLock<VectorIndex>,
    ready: Arc<AtomicBool>,
    embed_batch: usize,
    embed_timeout: Duration,
    index_retry_initial: Duration,
    index_retry_max: Duration,
    capture_content: bool,
}

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

impl AppState {
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
            }),
        }
    }

    /// Whether the catalog is embedded and queries can be answered.
    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::Acquire)
    }

    fn index(&self) -> Option<&VectorIndex> {
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

    /// Embeds the catalog in the background, retrying with exponential backoff (with jitter)
    /// until it succeeds: the LLM server may well start after us.
    pub fn spawn_indexing(&self) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        tokio::spawn(async move {
            let mut delay = state.shared.index_retry_initial;
            let mut attempt = 1u32;
            while state.build_index(attempt).await.is_err() {
                let wait = jitter(delay);
                tracing::info!(
                    attempt,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "recommendation.index.retry_scheduled"
                );
                tokio::time::sleep(wait).await;
                delay = (delay * 2).min(state.shared.index_retry_max);
                attempt = attempt.saturating_add(1);
            }
        })
    }
}

/// `d` scaled by a random factor in 0.8..1.2, so replicas restarted together do not retry in
/// lockstep against a recovering LLM server.
fn jitter(d: Duration) -> Duration {
    use std::hash::{BuildHasher as _, Hasher as _};
    // RandomState is seeded randomly per instance: enough randomness for jitter without a crate.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    #[allow(clippy::cast_precision_loss)] // only the top bits matter
    let unit = (random >> 11) as f64 / (1u64 << 53) as f64;
    d.mul_f64(0.8 + 0.4 * unit)
}

/// The service's router: `POST /v1/recommend` (traced, body-limited) and untraced health probes;
/// `/readyz` answers 503 until the catalog is embedded.
pub fn app(state: AppState) -> Router {
    let ready = state.shared.ready.clone();
    let router = Router::new()
        .route("/v1/recommend", post(recommend))
        .layer(service_kit::limits())
        .layer(telemetry::HttpServerLayer::new())
        .with_state(state)
        .merge(service_kit::health_routes(ready));
    service_kit::with_json_fallbacks(router)
}

/// Body of `POST /v1/recommend`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendRequest {
    /// What the customer is looking for: 1..=2000 characters, not blank.
    pub query: String,
    /// How many products to return: 1..=10, default 3.
    #[serde(default)]
    pub top_k: Option<usize>,
}

const MAX_QUERY_CHARS: usize = 2000;
const DEFAULT_TOP_K: usize = 3;
const MAX_TOP_K: usize = 10;
/// Related products listed at most.
const MAX_RELATED: usize = 3;

impl RecommendRequest {
    fn validate(&self) -> Result<usize, ApiError> {
        if self.query.trim().is_empty() {
            return Err(ApiError::unprocessable("query must not be empty"));
        }
        if self.query.chars().count() > MAX_QUERY_CHARS {
            return Err(ApiError::unprocessable(format!(
                "query must be at most {MAX_QUERY_CHARS} characters"
            )));
        }
        let top_k = self.top_k.unwrap_or(DEFAULT_TOP_K);
        if !(1..=MAX_TOP_K).contains(&top_k) {
            return Err(ApiError::unprocessable(format!(
                "top_k must be between 1 and {MAX_TOP_K}"
            )));
        }
        Ok(top_k)
    }
}

/// A product with its similarity to the query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredProduct {
    /// The product.
    pub product: Product,
    /// Cosine similarity, -1..=1.
    pub score: f32,
}

/// Answer of `POST /v1/recommend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendResponse {
    /// The `top_k` nearest products, best first.
    pub products: Vec<ScoredProduct>,
    /// Up to three more products of the best hit's category, nearest first.
    pub related: Vec<Product>,
    /// The model that embedded the query.
    pub embedding_model: String,
}

async fn recommend(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RecommendRequest>,
) -> Result<Json<RecommendResponse>, AppError> {
    let top_k = request.validate()?;
    let index = state.index().ok_or(AppError::NotReady)?;
    let s = &state.shared;

    let (vector, model) = index::with_deadline(
        s.embed_timeout,
        s.embedder.embed(std::slice::from_ref(&request.query)),
    )
    .await
    .and_then(|e| {
        let [vector] = <[Vec<f32>; 1]>::try_from(e.vectors).map_err(|v| {
            LlmError::InvalidResponse(format!("asked for 1 embedding, got {}", v.len()))
        })?;
        index::check_vector(&vector, index.dims())?;
        Ok((vector, e.model))
    })
    .map_err(|e| {
        tracing::warn!(
            error.type = %e.error_type(),
            error.message = %e,
            "recommendation.query.embedding_failed"
        );
        AppError::from(e)
    })?;

    let (hits, related) = retrieve(
        index,
        s.catalog.products(),
        &vector,
        top_k,
        &request.query,
        s.capture_content,
    )?;
    Ok(Json(RecommendResponse {
        products: hits,
        related,
        embedding_model: model,
    }))
}

/// The vector search, in an INTERNAL span named per the GenAI retrieval conventions
/// (`retrieval {data source}`), with the result's shape as attributes.
fn retrieve(
    index: &VectorIndex,
    products: &[Product],
    query_vector: &[f32],
    top_k: usize,
    query: &str,
    capture_content: bool,
) -> Result<(Vec<ScoredProduct>, Vec<Product>), LlmError> {
    let span = tracing::info_span!(
        "retrieval",
        otel.name = "retrieval catalog",
        otel.kind = "internal",
        gen_ai.operation.name = "retrieval",
        gen_ai.data_source.id = "catalog",
        gen_ai.retrieval.query.text = Empty,
        gen_ai.retrieval.documents = Empty,
        retrieval.top_k = top_k,
        retrieval.catalog_size = products.len(),
        retrieval.result_count = Empty,
        retrieval.best_score = Empty,
        retrieval.related_count = Empty,
    );
    let _entered = span.enter();
    if capture_content {
        span.record("gen_ai.retrieval.query.text", query);
    }
    let ranked = index.rank(query_vector)?;
    let hits: Vec<ScoredProduct> = ranked
        .iter()
        .take(top_k)
        .filter_map(|&(i, score)| {
            products.get(i).map(|p| ScoredProduct {
                product: p.clone(),
                score,
            })
        })
        .collect();
    let related: Vec<Product> = match hits.first() {
        Some(best) => ranked
            .iter()
            .skip(top_k)
            .filter_map(|&(i, _)| products.get(i))
            .filter(|p| p.category == best.product.category)
            .take(MAX_RELATED)
            .cloned()
            .collect(),
        None => Vec::new(),
    };

    span.record("retrieval.result_count", hits.len());
    span.record("retrieval.related_count", related.len());
    if let Some(best) = hits.first() {
        span.record("retrieval.best_score", f64::from(best.score));
    }
    // Ids and scores only: small, not sensitive, and what the conventions ask for.
    let documents: Vec<serde_json::Value> = hits
        .iter()
        .map(|h| serde_json::json!({"id": h.product.id, "score": h.score}))
        .collect();
    span.record(
        "gen_ai.retrieval.documents",
        serde_json::Value::Array(documents).to_string(),
    );
    Ok((hits, related))
}

#[cfg(test)]
mod tests;
