//! What every ShopMax service shares, so each service's crate holds only its own logic.
//!
//! # Layout
//! - [`ApiError`] (`error.rs`): the JSON error body every service answers with (no internals,
//!   with the trace id).
//! - [`ApiJson`], [`limits`] (`json.rs`): a JSON extractor whose rejections are clear 4xx JSON
//!   errors, and the body limit.
//! - [`service_router`] (`router.rs`): the one way a service's router is assembled, with
//!   untraced `/healthz` and `/readyz` and JSON 404 / 405.
//! - [`serve_on`], [`serve`] (`serve.rs`): serving until ctrl-c or SIGTERM, draining in-flight
//!   requests for a bounded time.
//! - [`env`]: small helpers for `Config::from_env()` (being replaced by the `env-config` crate).
//! - [`testing`] (feature `testing`): reading response bodies in handler tests.

mod error;
mod json;
mod router;
mod serve;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::ApiError;
pub use json::{ApiJson, MAX_BODY_BYTES, limits};
pub use router::{health_routes, service_router, with_json_fallbacks};
pub use serve::{DRAIN_TIMEOUT, ServeError, serve, serve_on, shutdown_signal};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::Router;
    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::StatusCode;
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
