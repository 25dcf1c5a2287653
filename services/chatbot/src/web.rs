//! The chat page and the browser's span relay.
//!
//! - `GET /` (the page), `/app.js` (its bundle, built from `web/src` by esbuild and committed, so
//!   `cargo build` needs no Node.js) and `/app.css`, compiled into the binary.
//! - `POST /v1/traces`: the page's OTLP/HTTP spans, relayed to `CHATBOT_BROWSER_TRACES_URL` (the
//!   Collector's OTLP/HTTP receiver), as the OpenTelemetry demo's front-end proxy does. The page
//!   talks to one origin only, so the Collector needs no CORS and no public port, and what a
//!   browser may send is bounded here: OTLP/JSON, not compressed, at most [`MAX_SPANS_BODY`]
//!   bytes, and only spans of the resource `service.name=shopmax-web`, so nobody can slip spans
//!   that claim to be the chatbot or fraud into real traces. (The page's exporter sends exactly
//!   that; a compressed body would make the size bound meaningless.)
//!
//! Neither is traced: a page load or a span upload is not a customer's question, and tracing
//! the relay would trace the traces.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use service_kit::ApiError;

const INDEX: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/dist/app.js");
const APP_CSS: &str = include_str!("../web/app.css");

/// Largest span upload relayed.
pub(crate) const MAX_SPANS_BODY: usize = 512 * 1024;

#[derive(Clone, Debug)]
struct Relay {
    client: reqwest::Client,
    /// `None`: relaying is off.
    upstream: Option<reqwest::Url>,
}

/// The page's routes. `trace_url` is the trace UI's address with `{trace_id}` where the id
/// goes (empty: no link); `upstream`, where the page's spans go (`None`: nowhere).
pub(crate) fn routes(trace_url: &str, upstream: Option<reqwest::Url>) -> Router {
    let page = INDEX.replace("{{TRACE_URL}}", &html_attribute(trace_url));
    let relay = Relay {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default(),
        upstream,
    };
    Router::new()
        .route(
            "/",
            get(move || async move {
                (
                    [
                        // Scripts, styles and requests from this origin only; no framing.
                        (
                            header::CONTENT_SECURITY_POLICY,
                            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
                        ),
                        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                        (header::REFERRER_POLICY, "no-referrer"),
                    ],
                    Html(page),
                )
            }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/v1/traces",
            post(relay_spans).layer(DefaultBodyLimit::max(MAX_SPANS_BODY)),
        )
        .with_state(relay)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `text` safe inside a double-quoted HTML attribute.
fn html_attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The only resource whose spans the relay takes: the page.
const PAGE_SERVICE: &str = "shopmax-web";

/// Why an upload is refused, if it is: not OTLP/JSON, or spans of another service.
fn refuse(headers: &HeaderMap, body: &[u8]) -> Option<ApiError> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Some(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the page's spans are OTLP/JSON (application/json)",
        ));
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    if !encoding.trim().eq_ignore_ascii_case("identity") {
        return Some(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            "span uploads are not compressed",
        ));
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Some(ApiError::bad_request("the body is not JSON"));
    };
    let resources = json
        .get("resourceSpans")
        .and_then(serde_json::Value::as_array);
    let only_the_page = resources.is_some_and(|resources| {
        resources.iter().all(|rs| {
            rs.pointer("/resource/attributes")
                .and_then(serde_json::Value::as_array)
                .is_some_and(|attributes| {
                    attributes.iter().any(|kv| {
                        kv.get("key").and_then(serde_json::Value::as_str) == Some("service.name")
                            && kv
                                .pointer("/value/stringValue")
                                .and_then(serde_json::Value::as_str)
                                == Some(PAGE_SERVICE)
                    })
                })
        })
    });
    (!only_the_page).then(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "not_the_page",
            "only spans of service.name=shopmax-web are relayed",
        )
    })
}

async fn relay_spans(State(relay): State<Relay>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(upstream) = relay.upstream else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "browser spans are not collected here (CHATBOT_BROWSER_TRACES_URL=none)",
        )
        .into_response();
    };
    if let Some(refusal) = refuse(&headers, &body) {
        return refusal.into_response();
    }
    let request = relay
        .client
        .post(upstream)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body);
    match request.send().await {
        Ok(answer) => {
            let status =
                StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let content_type = answer
                .headers()
                .get(header::CONTENT_TYPE)
                .cloned()
                .unwrap_or_else(|| HeaderValue::from_static("application/json"));
            let body = answer.bytes().await.unwrap_or_default();
            (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Err(error) => {
            tracing::warn!(error = %error, "web.spans.relay_failed");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "collector_unavailable",
                "the span collector did not answer",
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    async fn call(
        app: Router,
        request: axum::http::Request<axum::body::Body>,
    ) -> (StatusCode, String) {
        let response = app.oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn get(path: &str) -> axum::http::Request<axum::body::Body> {
        axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .expect("request")
    }

    #[tokio::test]
    async fn the_page_names_the_trace_ui_escaped() {
        let app = routes("http://jaeger/trace/{trace_id}?a=1&b=\"x\"", None);
        let (status, page) = call(app, get("/")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains(r#"content="http://jaeger/trace/{trace_id}?a=1&amp;b=&quot;x&quot;""#),
            "{page}"
        );
        assert!(page.contains(r#"<script type="module" src="/app.js">"#));
    }

    #[tokio::test]
    async fn the_bundle_and_the_styles_are_served_with_their_types() {
        for (path, kind) in [("/app.js", "text/javascript"), ("/app.css", "text/css")] {
            let response = routes("", None).oneshot(get(path)).await.expect("response");
            assert_eq!(response.status(), StatusCode::OK);
            let content_type = response.headers()[header::CONTENT_TYPE]
                .to_str()
                .expect("ascii")
                .to_owned();
            assert!(content_type.starts_with(kind), "{path}: {content_type}");
        }
    }

    #[tokio::test]
    async fn spans_are_refused_when_no_collector_is_configured_or_the_type_is_wrong() {
        let post = |content_type: &str| {
            axum::http::Request::post("/v1/traces")
                .header(header::CONTENT_TYPE, content_type)
                .body(axum::body::Body::from("{}"))
                .expect("request")
        };
        let (status, body) = call(routes("", None), post("application/json")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let upstream = reqwest::Url::parse("http://127.0.0.1:9/v1/traces").expect("url");
        for content_type in [
            "text/plain",
            "application/x-protobuf",
            "application/json-seq",
        ] {
            let (status, _) = call(routes("", Some(upstream.clone())), post(content_type)).await;
            assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}");
        }
        // Nothing listens on port 9: a clean 502, not a hang or a 500.
        let page_spans = axum::http::Request::post("/v1/traces")
            .header(header::CONTENT_TYPE, "Application/JSON; charset=utf-8")
            .body(axum::body::Body::from(spans_of("shopmax-web")))
            .expect("request");
        let (status, body) = call(routes("", Some(upstream)), page_spans).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert!(body.contains("collector_unavailable"), "{body}");
    }

    fn spans_of(service: &str) -> String {
        serde_json::json!({"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": service}}
        ]}, "scopeSpans": []}]})
        .to_string()
    }

    #[tokio::test]
    async fn only_the_pages_own_uncompressed_spans_are_relayed() {
        let upstream = reqwest::Url::parse("http://127.0.0.1:9/v1/traces").expect("url");
        let upload = |body: String, encoding: Option<&str>| {
            let mut request = axum::http::Request::post("/v1/traces")
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(encoding) = encoding {
                request = request.header(header::CONTENT_ENCODING, encoding);
            }
            request.body(axum::body::Body::from(body)).expect("request")
        };
        // Spans claiming to be a backend service could be slipped into its traces.
        let (status, body) = call(
            routes("", Some(upstream.clone())),
            upload(spans_of("fraud"), None),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, _) = call(routes("", Some(upstream.clone())), upload("{".into(), None)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // A compressed body would make the size limit meaningless.
        let (status, body) = call(
            routes("", Some(upstream)),
            upload(spans_of("shopmax-web"), Some("gzip")),
        )
        .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    }

    #[tokio::test]
    async fn the_page_is_served_with_a_content_security_policy() {
        let response = routes("", None).oneshot(get("/")).await.expect("response");
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii");
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(
            response.headers()[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff"
        );
    }

    #[tokio::test]
    async fn a_span_upload_over_the_limit_is_413() {
        let upstream = reqwest::Url::parse("http://127.0.0.1:9/v1/traces").expect("url");
        let request = axum::http::Request::post("/v1/traces")
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(vec![b' '; MAX_SPANS_BODY + 1]))
            .expect("request");
        let (status, _) = call(routes("", Some(upstream)), request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
