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
//! - [`Faults`] (`faults.rs`): the demo's and the drills' fault knobs (latency, error rate) and
//!   their `/admin/faults` endpoint.
//! - `testing` (feature `testing`): reading response bodies in handler tests.

mod error;
mod faults;
mod json;
mod router;
mod serve;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::ApiError;
pub use faults::{ADMIN_PATH as FAULTS_ADMIN_PATH, FaultConfig, FaultSettings, Faults};
pub use json::{ApiJson, MAX_BODY_BYTES, limits};
pub use router::{health_routes, service_router, with_json_fallbacks};
pub use serve::{DRAIN_TIMEOUT, ServeError, serve, serve_on, shutdown_signal};

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
    async fn shape_errors_name_the_field_without_parser_noise() {
        for (body, expected) in [
            (
                r#"{"question":1}"#,
                "question: invalid type: integer `1`, expected a string",
            ),
            (r#"{}"#, "missing field `question`"),
            (
                r#"{"question":"x","extra":1}"#,
                "extra: unknown field `extra`, expected `question`",
            ),
        ] {
            let (status, json) = call(Some("application/json"), body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
            assert_eq!(json["error"]["message"], expected, "{body}");
        }
        let (status, json) = call(Some("application/json"), r#"{"question":"x"} trailing"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
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
