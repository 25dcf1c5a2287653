//! How every service assembles its router: the API behind the body limit and the server-span
//! layer, health probes outside it, JSON 404 and 405 for everything else.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::{ApiError, limits};

/// A service's whole router from its API routes (state already applied): the API gets the body
/// [`limits`] and `tracing` (the layer that makes SERVER spans); `/healthz` and `/readyz` sit
/// outside that layer, so probes stay out of traces; unknown paths and methods get JSON 404
/// and 405. `ready` drives `/readyz`.
pub fn service_router(
    api: Router,
    tracing: telemetry::HttpServerLayer,
    ready: Arc<AtomicBool>,
) -> Router {
    let api = api.layer(limits()).layer(tracing);
    with_json_fallbacks(api.merge(health_routes(ready)))
}

/// `/healthz` (the process is up) and `/readyz` (it can serve: `ready` is set once start-up work
/// such as loading embeddings is done). Merge these after the tracing layer so probes stay out of
/// traces.
pub fn health_routes(ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route(
            "/readyz",
            get(move || {
                let ready = ready.load(Ordering::Acquire);
                async move {
                    if ready {
                        (StatusCode::OK, Json(json!({ "status": "ready" })))
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            Json(json!({ "status": "starting" })),
                        )
                    }
                }
            }),
        )
}

/// JSON 404 and 405 answers instead of axum's empty ones.
pub fn with_json_fallbacks<S>(router: Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not accept that method",
            )
        })
}
