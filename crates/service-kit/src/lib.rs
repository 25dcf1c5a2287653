//! What every ShopMax service shares, so each service's `lib.rs` holds only its own logic.
//!
//! # Layout
//! - [`ApiError`]: the JSON error body every service answers with (no internals, with trace id).
//! - [`ApiJson`]: a JSON extractor whose rejections are clear 4xx JSON errors.
//! - [`health_routes`]: untraced `/healthz` and `/readyz`.
//! - [`serve`]: serves a router until ctrl-c or SIGTERM, draining in-flight requests.
//! - [`env`]: small helpers for `Config::from_env()`.
//! - `testing` (feature `testing`): reading response bodies in handler tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

/// Largest request body any service accepts; bigger bodies get 413 before they are read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An error answer: status, a stable machine-readable code, and a human message without internals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `invalid_request`.
    pub code: &'static str,
    /// What went wrong, for a human; never a stack trace or an upstream body.
    pub message: String,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 422 `invalid_field`.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let trace_id = telemetry::current_trace_id();
        tracing::warn!(
            status = self.status.as_u16(),
            code = self.code,
            detail = %self.message,
            "request.rejected"
        );
        let body = json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "trace_id": trace_id,
            }
        });
        (self.status, Json(body)).into_response()
    }
}

/// Like [`axum::Json`], but every rejection is an [`ApiError`]: 415 for a wrong content type,
/// 400 for malformed JSON, 422 for well-formed JSON of the wrong shape (unknown or missing
/// fields, wrong types), 413 for an oversized body.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(rejection_to_error(JsonRejection::MissingJsonContentType(
                Default::default(),
            )));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::bad_request(rejection.body_text())
            }
        })?;
        // Every request type is an object: serde would otherwise fill a struct's fields from a
        // JSON array by position, which no client means.
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => {}
            Some(_) => {
                return Err(ApiError::unprocessable(
                    "the request body must be a JSON object",
                ));
            }
            None => return Err(ApiError::bad_request("the request body is empty")),
        }
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejection_to_error(rejection)),
        }
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
    )
}

/// `application/json` or any `application/*+json`, as axum's own extractor accepts.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

fn rejection_to_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request(format!("malformed JSON: {}", e.body_text()))
        }
        JsonRejection::JsonDataError(e) => ApiError::unprocessable(e.body_text()),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            too_large()
        }
        other => ApiError::bad_request(other.body_text()),
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
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

/// The body size limit every service's API routes get. It is enforced by the extractors, so an
/// oversized body is answered by [`ApiJson`] as a JSON 413, whether or not it declared its length.
pub fn limits() -> axum::extract::DefaultBodyLimit {
    axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES)
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

/// How long in-flight requests may take to finish after a stop signal. Kubernetes kills a pod
/// 30 s after SIGTERM by default; this leaves time for the telemetry flush that follows.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `router` on `listener` until ctrl-c or SIGTERM, then lets in-flight requests finish,
/// for at most [`DRAIN_TIMEOUT`]: a request stuck on a slow LLM must not keep the process alive
/// past the orchestrator's kill, which would lose the final telemetry flush.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown_signal().await;
        let _ = stopping_tx.send(());
    };
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal);
    let deadline = async move {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!(drain_secs = DRAIN_TIMEOUT.as_secs(), "service.shutdown.drain_timed_out");
            Ok(())
        }
    }
}

/// Why a service could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The port could not be bound (in use, or not permitted).
    #[error("binding port {port}: {source}")]
    Bind {
        /// The port.
        port: u16,
        /// The bind error.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("serving: {0}")]
    Serve(#[from] std::io::Error),
}

/// Binds `0.0.0.0:port` and [`serve`]s `router` there until a stop signal: what every
/// service's `main` does.
pub async fn serve_on(port: u16, router: Router) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|source| ServeError::Bind { port, source })?;
    tracing::info!(port, "service.listening");
    serve(listener, router).await?;
    tracing::info!("service.stopped");
    Ok(())
}

/// Resolves on ctrl-c or SIGTERM (what `docker stop` and Kubernetes send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("service.shutdown.started");
}

/// Helpers for reading configuration in `Config::from_env()`.
pub mod env {
    use std::str::FromStr;

    /// Why a configuration variable was rejected.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("{key}: {reason}")]
    pub struct ConfigError {
        /// The variable.
        pub key: String,
        /// What is wrong with it.
        pub reason: String,
    }

    /// The variable's value, if set and not empty.
    pub fn get(lookup: &dyn Fn(&str) -> Option<String>, key: &str) -> Option<String> {
        lookup(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A boolean: `true` or `false` in any case, `default` when unset, an error otherwise.
    pub fn bool_or(
        lookup: &dyn Fn(&str) -> Option<String>,
        key: &str,
        default: bool,
    ) -> Result<bool, ConfigError> {
        match get(lookup, key) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ConfigError {
                key: key.to_owned(),
                reason: format!("{v:?} is not true or false"),
            }),
        }
    }

    /// The variable parsed as `T`, or `default` when unset; an unparsable value is an error
    /// (a service must not start on a typo in its own settings).
    pub fn parse_or<T: FromStr>(
        lookup: &dyn Fn(&str) -> Option<String>,
        key: &str,
        default: T,
    ) -> Result<T, ConfigError> {
        match get(lookup, key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| ConfigError {
                key: key.to_owned(),
                reason: format!("cannot parse {v:?}"),
            }),
        }
    }

    /// The process environment as a lookup function.
    pub fn process() -> impl Fn(&str) -> Option<String> {
        |key| std::env::var(key).ok()
    }

    /// A fixed set of variables as a lookup function (for tests and embedding).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |key| map.get(key).cloned()
    }
}

/// Reading response bodies in handler tests (feature `testing`); panics on a broken body, as a
/// test should.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use axum::body::Bytes;
    use axum::http::StatusCode;
    use axum::response::Response;
    use http_body_util::BodyExt as _;

    /// The status and the whole body.
    pub async fn body_bytes(response: Response) -> (StatusCode, Bytes) {
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("response body")
            .to_bytes();
        (status, bytes)
    }

    /// The status and the body as JSON (`Null` when it is not JSON).
    pub async fn json_body(response: Response) -> (StatusCode, serde_json::Value) {
        let (status, bytes) = body_bytes(response).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt as _;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Ask {
        question: String,
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/ask",
                post(|ApiJson(ask): ApiJson<Ask>| async move { ask.question }),
            )
            .layer(limits())
    }

    async fn call(
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> (StatusCode, serde_json::Value) {
        let mut req = Request::post("/ask");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let response = app()
            .oneshot(req.body(body.into()).expect("request"))
            .await
            .expect("response");
        testing::json_body(response).await
    }

    #[tokio::test]
    async fn rejections_are_json_4xx() {
        let cases: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
            (
                None,
                br#"{"question":"x"}"#.to_vec(),
                415,
                "unsupported_media_type",
            ),
            (
                Some("application/json"),
                b"{not json".to_vec(),
                400,
                "invalid_request",
            ),
            (
                Some("application/json"),
                br#"{"question":1}"#.to_vec(),
                422,
                "invalid_field",
            ),
            (
                Some("application/json"),
                br#"{"question":"x","extra":1}"#.to_vec(),
                422,
                "invalid_field",
            ),
            (
                Some("application/json"),
                br#"{}"#.to_vec(),
                422,
                "invalid_field",
            ),
            (
                Some("application/json"),
                br#"["x"]"#.to_vec(),
                422,
                "invalid_field",
            ),
            (
                Some("application/json"),
                b"".to_vec(),
                400,
                "invalid_request",
            ),
            (
                Some("text/plain"),
                br#"{"question":"x"}"#.to_vec(),
                415,
                "unsupported_media_type",
            ),
            (
                Some("application/problem+json; charset=utf-8"),
                br#"{"question":1}"#.to_vec(),
                422,
                "invalid_field",
            ),
            (
                Some("application/json"),
                vec![b' '; MAX_BODY_BYTES + 1],
                413,
                "payload_too_large",
            ),
        ];
        for (ct, body, status, code) in cases {
            let (got, json) = call(ct, body).await;
            assert_eq!(got.as_u16(), status, "{json}");
            assert_eq!(json["error"]["code"], code);
            assert!(
                json["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    }

    #[tokio::test]
    async fn oversized_bodies_with_a_content_length_get_a_json_413() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        let request = Request::post("/ask")
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .body(Body::from(body))
            .expect("request");
        let response = app().oneshot(request).await.expect("response");
        let (got, json) = testing::json_body(response).await;
        assert_eq!(got, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(json["error"]["code"], "payload_too_large");
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_get_json_404_and_405() {
        let app = with_json_fallbacks(app());
        for (method, path, status, code) in [
            ("GET", "/nope", StatusCode::NOT_FOUND, "not_found"),
            (
                "GET",
                "/ask",
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
            ),
        ] {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .expect("request");
            let response = app.clone().oneshot(request).await.expect("response");
            let (got, json) = testing::json_body(response).await;
            assert_eq!(got, status);
            assert_eq!(json["error"]["code"], code);
        }
    }

    #[test]
    fn booleans_parse_in_any_case_and_reject_typos() {
        let lookup = env::from_pairs(&[("A", "TRUE"), ("B", "false"), ("C", "yes")]);
        assert_eq!(env::bool_or(&lookup, "A", false), Ok(true));
        assert_eq!(env::bool_or(&lookup, "B", true), Ok(false));
        assert!(env::bool_or(&lookup, "C", false).is_err());
        assert_eq!(env::bool_or(&lookup, "D", true), Ok(true));
    }

    #[tokio::test]
    async fn readyz_follows_the_flag() {
        let ready = Arc::new(AtomicBool::new(false));
        let app = health_routes(ready.clone());
        let get = |path: &'static str| Request::get(path).body(Body::empty()).expect("request");
        let r = app.clone().oneshot(get("/readyz")).await.expect("response");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        ready.store(true, Ordering::Release);
        let r = app.clone().oneshot(get("/readyz")).await.expect("response");
        assert_eq!(r.status(), StatusCode::OK);
        let r = app.oneshot(get("/healthz")).await.expect("response");
        assert_eq!(r.status(), StatusCode::OK);
    }
}
