//! The service side of the W3C Trace Context test harness
//! (<https://github.com/w3c/trace-context/tree/main/test>).
//!
//! The harness POSTs a JSON array of `{"url", "arguments"}` to us with trace headers; for each
//! element we POST `arguments` as JSON to `url` from a new CLIENT span of the incoming context,
//! then answer 200. The test suite then checks which headers reached `url`. It exercises exactly
//! the production path: [`telemetry::HttpServerLayer`] in, [`telemetry::TracedClient`] out.
//!
//! It is test tooling, not part of the library: the `w3c_conformance` example serves it, and
//! `tests/propagation.rs` drives it; both include this file with `#[path]`.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use telemetry::{HttpServerLayer, TracedClient};

/// Most callbacks one harness request may ask for.
pub(crate) const MAX_CASES: usize = 64;

/// One callback the harness asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Case {
    /// Where to POST.
    pub(crate) url: String,
    /// The JSON to POST there.
    pub(crate) arguments: Value,
}

/// The router: `POST /test`, traced.
pub(crate) fn router(client: TracedClient) -> Router {
    Router::new()
        .route("/test", post(run))
        .layer(HttpServerLayer::new())
        .with_state(client)
}

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": { "code": "bad_request", "message": message.into() } })),
    )
        .into_response()
}

async fn run(
    State(client): State<TracedClient>,
    body: Result<Json<Vec<Case>>, JsonRejection>,
) -> Response {
    let cases = match body {
        Ok(Json(cases)) => cases,
        Err(rejection) => return bad_request(rejection.body_text()),
    };
    if cases.len() > MAX_CASES {
        return bad_request(format!("at most {MAX_CASES} cases per request"));
    }
    for case in &cases {
        match reqwest::Url::parse(&case.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => return bad_request(format!("not an http(s) url: {:?}", case.url)),
        }
    }
    for case in cases {
        match client.post(&case.url).json(&case.arguments).send().await {
            Ok(_) => {}
            Err(error) if error.is_builder() => {
                return bad_request("could not build the callback request");
            }
            // The harness only inspects what reached it; a failed callback is logged, not fatal.
            Err(error) => {
                tracing::warn!(error = %error, url = %case.url, "w3c_harness.callback.failed");
            }
        }
    }
    StatusCode::OK.into_response()
}
