//! Shared test fixtures: a process-wide telemetry setup (the subscriber and providers are global,
//! so each test binary initialises once and its tests share it; the set-up itself is
//! `test_harness::TestEnv`), a header-capturing downstream, and small HTTP helpers.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::any;
use otlp_sink::OtlpSink;
use telemetry::ServiceInfo;
pub use test_harness::{TestEnv, WAIT, vars};
use tokio::net::TcpListener;

pub const SERVICE: ServiceInfo = ServiceInfo {
    name: "telemetry-test",
    version: "9.9.9",
    site: "Bangalore",
};

/// Starts a sink, then initialises telemetry for [`SERVICE`] with `vars(&sink)`.
pub fn start(vars: impl FnOnce(&OtlpSink) -> Vec<(String, String)>) -> TestEnv {
    TestEnv::start(SERVICE, vars)
}

/// A downstream that records the headers of every request and answers 200 `{}`.
#[derive(Clone, Default)]
pub struct Capture {
    pub requests: Arc<Mutex<Vec<(String, HeaderMap)>>>,
}

impl Capture {
    pub fn last_for(&self, path: &str) -> Option<HeaderMap> {
        self.requests
            .lock()
            .expect("capture")
            .iter()
            .rev()
            .find(|(p, _)| p == path)
            .map(|(_, h)| h.clone())
    }
}

async fn record(
    State(capture): State<Capture>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> &'static str {
    capture
        .requests
        .lock()
        .expect("capture")
        .push((uri.path().to_owned(), headers));
    "{}"
}

/// Serves `router` on 127.0.0.1 port 0; returns its address.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    addr
}

/// Starts a capturing downstream.
pub async fn capture_server() -> (Capture, SocketAddr) {
    let capture = Capture::default();
    let router = Router::new()
        .fallback(any(record))
        .with_state(capture.clone());
    (capture, serve(router).await)
}

/// Header values as strings (all values of `name`).
pub fn header_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect()
}

/// Drives one traced request through a server with [`telemetry::HttpServerLayer`] that calls a
/// downstream with [`telemetry::TracedClient`] and logs inside the request; then checks that
/// spans, metrics and logs reached the sink over `transport` with the right resource.
pub fn assert_signals_arrive(env: &TestEnv, transport: otlp_sink::Transport) {
    use axum::routing::get;
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    let sink = env.sink.clone();
    env.rt.block_on(async move {
        let (_capture, downstream) = capture_server().await;
        let client = telemetry::TracedClient::new(reqwest::Client::new(), env.policy.clone());
        let app = Router::new()
            .route(
                "/items/{id}",
                get(
                    move |axum::extract::Path(id): axum::extract::Path<String>| {
                        let client = client.clone();
                        async move {
                            tracing::info!(item = %id, "items.lookup.started");
                            let url = format!("http://localhost:{}/stock", downstream.port());
                            let _ = client.get(url).send().await;
                            let cx = tracing::Span::current().context();
                            cx.span().span_context().trace_id().to_string()
                        }
                    },
                ),
            )
            .layer(telemetry::HttpServerLayer::new());
        let addr = serve(app).await;
        let response = reqwest::Client::new()
            .get(format!("http://{addr}/items/42?x=1"))
            .header("user-agent", "it/1.0")
            .send()
            .await
            .expect("app reachable");
        assert_eq!(response.status(), 200);
        let trace_id = response.text().await.expect("body");
        assert_eq!(trace_id.len(), 32);

        let spans = sink
            .wait_for_spans(2, WAIT, |s| s.trace_id() == trace_id)
            .await;
        assert_eq!(spans.len(), 2, "{spans:?}");
        let server = spans
            .iter()
            .find(|s| s.span.kind == 2)
            .expect("server span");
        assert_eq!(server.span.name, "GET /items/{id}");
        assert_eq!(server.transport, transport);
        assert_eq!(server.attr("http.route").as_deref(), Some("/items/{id}"));
        assert_eq!(server.attr("url.query").as_deref(), Some("x=1"));
        assert_eq!(
            server.attr("user_agent.original").as_deref(),
            Some("it/1.0")
        );
        assert_eq!(server.resource_attr("service.name"), Some("telemetry-test"));
        assert_eq!(server.resource_attr("service.version"), Some("9.9.9"));
        assert_eq!(server.resource_attr("service.namespace"), Some("shopmax"));
        assert_eq!(server.resource_attr("geo.locality.name"), Some("Bangalore"));
        assert!(
            server
                .resource_attr("deployment.environment.name")
                .is_some()
        );
        let client_span = spans
            .iter()
            .find(|s| s.span.kind == 3)
            .expect("client span");
        assert_eq!(client_span.parent_span_id(), server.span_id());

        // The log line written inside the request carries the request's trace context.
        assert!(
            sink.wait_until(WAIT, |s| {
                s.received().logs.iter().any(|(t, req)| {
                    *t == transport
                        && req
                            .resource_logs
                            .iter()
                            .flat_map(|r| &r.scope_logs)
                            .flat_map(|s| &s.log_records)
                            .any(|rec| {
                                otlp_sink::hex(&rec.trace_id) == trace_id
                                    && format!("{:?}", rec.body).contains("items.lookup.started")
                            })
                })
            })
            .await,
            "log record with the trace id"
        );
        // Both HTTP duration metrics arrive.
        assert!(
            sink.wait_until(WAIT, |s| {
                let names = s.metric_names();
                names.iter().any(|n| n == "http.server.request.duration")
                    && names.iter().any(|n| n == "http.client.request.duration")
            })
            .await,
            "metrics: {:?}",
            sink.metric_names()
        );
    });
}

/// Percentile `p` (0..=100) of `samples`, in microseconds.
pub fn percentile(samples: &mut [u128], p: usize) -> u128 {
    samples.sort_unstable();
    let idx = (samples.len().saturating_sub(1) * p) / 100;
    samples[idx]
}

/// A router with a traced route `/work` (one server span and three child spans) and an untraced
/// twin `/plain` doing the same work, to compare the cost of tracing.
pub fn work_router() -> Router {
    use axum::routing::get;
    async fn work() -> &'static str {
        for step in ["parse", "score", "render"] {
            let span = tracing::info_span!("work.step", step);
            let _entered = span.enter();
            tracing::debug!("work.step.done");
        }
        "ok"
    }
    Router::new()
        .route("/work", get(work))
        .route("/plain", get(work))
        .layer(telemetry::HttpServerLayer::new().untraced_paths(["/plain", "/healthz"]))
}

/// Serves [`work_router`] and asserts that tracing adds nothing a request waits on: after a
/// warm-up, traced `/work` has a p50 within noise of untraced `/plain` (a noise bound, not a
/// speed target), and no traced request takes anywhere near a second, which any wait on an
/// exporter that is down, stuck or slow would.
pub async fn assert_requests_do_not_wait_on_export() {
    let addr = serve(work_router()).await;
    let client = reqwest::Client::new();
    latencies(&client, &format!("http://{addr}/plain"), 20).await;
    latencies(&client, &format!("http://{addr}/work"), 20).await;
    let mut plain = latencies(&client, &format!("http://{addr}/plain"), 300).await;
    let mut traced = latencies(&client, &format!("http://{addr}/work"), 300).await;
    let (p50_plain, p50_traced) = (percentile(&mut plain, 50), percentile(&mut traced, 50));
    let max_traced = percentile(&mut traced, 100);
    eprintln!(
        "p50 untraced {p50_plain} us, p50 traced {p50_traced} us, max traced {max_traced} us"
    );
    assert!(
        p50_traced <= p50_plain * 2 + 2_000,
        "traced p50 {p50_traced} us vs untraced {p50_plain} us"
    );
    assert!(
        max_traced < 1_000_000,
        "a request waited on the exporter: {max_traced} us"
    );
}

/// Sends `n` sequential GETs to `url`; returns each latency in microseconds.
pub async fn latencies(client: &reqwest::Client, url: &str, n: usize) -> Vec<u128> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = std::time::Instant::now();
        let response = client.get(url).send().await.expect("reachable");
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await;
        out.push(start.elapsed().as_micros());
    }
    out
}
