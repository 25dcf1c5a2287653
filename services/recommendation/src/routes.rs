//! `POST /v1/recommend`: embed the query, rank the catalog, answer the nearest products.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use catalog::Product;
use contract::recommendation::{
    self, DEFAULT_TOP_K, MAX_QUERY_CHARS, MAX_TOP_K, RecommendRequest, RecommendResponse,
    ScoredProduct,
};
use llm_client::LlmError;
use service_kit::{ApiError, ApiJson};
use tracing::field::Empty;

use crate::AppState;
use crate::error::AppError;
use crate::index::{self, VectorIndex};

/// Related products listed at most.
const MAX_RELATED: usize = 3;

/// The API routes, before the shared layers (see [`crate::app`]).
pub(crate) fn api(state: AppState) -> Router {
    Router::new()
        .route(recommendation::PATH, post(recommend))
        .with_state(state)
}

/// The requested `top_k`, or why the request is unacceptable.
fn validate(request: &RecommendRequest) -> Result<usize, ApiError> {
    if request.query.trim().is_empty() {
        return Err(ApiError::unprocessable("query must not be empty"));
    }
    if request.query.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::unprocessable(format!(
            "query must be at most {MAX_QUERY_CHARS} characters"
        )));
    }
    let top_k = request.top_k.unwrap_or(DEFAULT_TOP_K);
    if !(1..=MAX_TOP_K).contains(&top_k) {
        return Err(ApiError::unprocessable(format!(
            "top_k must be between 1 and {MAX_TOP_K}"
        )));
    }
    Ok(top_k)
}

pub(crate) async fn recommend(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RecommendRequest>,
) -> Result<Json<RecommendResponse>, AppError> {
    let top_k = validate(&request)?;
    let index = state.index().ok_or(AppError::NotReady)?;
    let s = &state.shared;

    let (vector, model, cost) = index::with_deadline(
        s.embed_timeout,
        s.embedder.embed(std::slice::from_ref(&request.query)),
    )
    .await
    .and_then(|e| {
        let [vector] = <[Vec<f32>; 1]>::try_from(e.vectors).map_err(|v| {
            LlmError::InvalidResponse(format!("asked for 1 embedding, got {}", v.len()))
        })?;
        index::check_vector(&vector, index.dims())?;
        Ok((vector, e.model, e.cost))
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
    // The embedding call was made and billed, priced or not.
    let mut spend = contract::Spend::default();
    spend.add_call(cost.as_ref());
    Ok(Json(RecommendResponse {
        products: hits,
        related,
        embedding_model: model,
        spend,
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
        gen_ai.retrieval.top_k = top_k,
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
    // Opt-in, as the conventions make the documents, with the query: ids and scores only.
    if capture_content {
        let documents: Vec<serde_json::Value> = hits
            .iter()
            .map(|h| serde_json::json!({"id": h.product.id, "score": h.score}))
            .collect();
        span.record(
            "gen_ai.retrieval.documents",
            serde_json::Value::Array(documents).to_string(),
        );
    }
    Ok((hits, related))
}
