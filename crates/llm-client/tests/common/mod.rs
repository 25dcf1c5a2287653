//! Shared test fixtures: a process-wide telemetry setup exporting to an in-process OTLP sink
//! (the subscriber and providers are global, so each test binary initialises once), a scripted
//! fake OpenAI-compatible server, and helpers to find and inspect exported spans and metrics.

#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::any;
use llm_client::{ChatMessage, ChatRequest, LlmConfig, Role};
use opentelemetry::trace::TraceContextExt as _;
use otlp_sink::SpanView;
use serde_json::{Value, json};
use telemetry::ServiceInfo;
pub use test_harness::{TestEnv, WAIT};
use tokio::net::TcpListener;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

pub const SERVICE: ServiceInfo = ServiceInfo {
    name: "llm-client-test",
    version: "9.9.9",
    site: "Bangalore",
};

/// Values the fake answers with, so tests can compare span attributes against them.
pub const RESPONSE_ID: &str = "chatcmpl-fake-1";
pub const RESPONSE_MODEL: &str = "gpt-4o-mini-2024-07-18";
pub const ANSWER: &str = "Try the ShopMax X1 headphones.";
pub const PROMPT_TOKENS: u64 = 42;
/// The conversation the canonical request belongs to.
pub const CONVERSATION: &str = "sess-0123456789abcdef";
pub const COMPLETION_TOKENS: u64 = 7;
pub const PROMPT: &str = "Which headphones should I buy?";
pub const SYSTEM: &str = "You are ShopMax's shopping assistant.";

/// OTLP span kind CLIENT.
pub const KIND_CLIENT: i32 = 3;
/// OTLP status code ERROR.
pub const STATUS_ERROR: i32 = 2;

/// Initialises telemetry once per test binary, exporting every signal to the sink over gRPC,
/// with fast export settings so tests do not wait for the 5 s / 60 s defaults.
pub fn env() -> &'static TestEnv {
    static ENV: OnceLock<TestEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        TestEnv::start(SERVICE, |sink| {
            test_harness::vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", sink.grpc_endpoint()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
            ])
        })
    })
}

/// Runs `future` on the shared runtime (after initialising telemetry).
pub fn run<F: Future>(future: F) -> F::Output {
    env().rt.block_on(future)
}

/// Runs `future` under a fresh root span; returns its output and the trace id, so a test finds
/// exactly its own spans among those of tests running in parallel.
pub async fn traced<F: Future>(future: F) -> (F::Output, String) {
    let root = tracing::info_span!("test.root");
    let trace_id = root.context().span().span_context().trace_id().to_string();
    let output = future.instrument(root).await;
    (output, trace_id)
}

/// Waits for at least `n` spans of `trace_id` and returns them all.
pub async fn spans_of(trace_id: &str, n: usize) -> Vec<SpanView> {
    let spans = env()
        .sink
        .wait_for_spans(n, WAIT, |s| s.trace_id() == trace_id)
        .await;
    assert!(spans.len() >= n, "expected {n} spans, got {spans:#?}");
    spans
}

/// The one span named `name`.
pub fn span<'a>(spans: &'a [SpanView], name: &str) -> &'a SpanView {
    let found: Vec<&SpanView> = spans.iter().filter(|s| s.span.name == name).collect();
    assert_eq!(found.len(), 1, "one span {name:?} in {spans:#?}");
    found[0]
}

/// The HTTP attempt spans under `parent`, in resend order.
pub fn attempts<'a>(spans: &'a [SpanView], parent: &SpanView) -> Vec<&'a SpanView> {
    let mut found: Vec<&SpanView> = spans
        .iter()
        .filter(|s| s.parent_span_id() == parent.span_id() && s.span.name.starts_with("POST "))
        .collect();
    found.sort_by_key(|s| resend_count(s));
    found
}

/// `http.request.resend_count` of an attempt (absent on the first).
pub fn resend_count(span: &SpanView) -> i64 {
    span.attr("http.request.resend_count")
        .map(|v| v.parse().expect("int"))
        .unwrap_or(0)
}

/// Everything a span carries as text: name, attributes, event names and attributes, status.
pub fn span_text(span: &SpanView) -> String {
    format!("{:?}", span.span)
}

/// A client config pointing at `base_url`, with tiny backoffs so retry tests are fast.
pub fn config(base_url: &str) -> LlmConfig {
    LlmConfig {
        base_url: base_url.to_owned(),
        api_key: None,
        chat_model: "gpt-4o-mini".into(),
        embedding_model: "text-embedding-3-small".into(),
        provider_name: "openai".into(),
        timeout: Duration::from_secs(2),
        max_retries: 2,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(20),
        capture_content: false,
        article_attributes: true,
        prices: llm_client::PriceTable::defaults(),
        prices_warning: None,
    }
}

/// A client for `config`, built after telemetry so its metrics reach the sink.
pub fn client(config: LlmConfig) -> llm_client::OpenAiClient {
    llm_client::OpenAiClient::new(config, env().policy.clone()).expect("client")
}

/// The chat request every test sends.
pub fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage {
                role: Role::System,
                content: SYSTEM.into(),
            },
            ChatMessage {
                role: Role::User,
                content: PROMPT.into(),
            },
        ],
        temperature: Some(0.2),
        max_tokens: Some(256),
        conversation_id: Some(CONVERSATION.into()),
    }
}

/// A plain chat completion with the canonical values.
pub fn completion() -> Value {
    json!({
        "id": RESPONSE_ID,
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": RESPONSE_MODEL,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": ANSWER},
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS
        }
    })
}

/// One streamed chunk carrying `content` (and `finish_reason` when given).
pub fn chunk(content: Option<&str>, finish_reason: Option<&str>) -> String {
    let delta = match content {
        Some(c) => json!({"content": c}),
        None => json!({"role": "assistant"}),
    };
    json!({
        "id": RESPONSE_ID,
        "object": "chat.completion.chunk",
        "model": RESPONSE_MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    })
    .to_string()
}

/// The final usage chunk OpenAI sends with `include_usage`.
pub fn usage_chunk() -> String {
    json!({
        "id": RESPONSE_ID,
        "object": "chat.completion.chunk",
        "model": RESPONSE_MODEL,
        "choices": [],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS
        }
    })
    .to_string()
}

/// What the fake answers to one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A complete response.
    Body {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// A `text/event-stream` body sent as separate writes `gap` apart (the first at once).
    Stream { pieces: Vec<Vec<u8>>, gap: Duration },
    /// `reply`, after a pause (before the headers).
    Delayed(Duration, Box<Reply>),
}

impl Reply {
    pub fn json(body: Value) -> Self {
        Self::Body {
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
        }
    }

    pub fn status(status: u16) -> Self {
        Self::status_with(status, Vec::new())
    }

    pub fn status_with(status: u16, headers: Vec<(&'static str, String)>) -> Self {
        Self::Body {
            status,
            headers,
            body: json!({"error": {"message": "scripted failure", "type": "server_error"}})
                .to_string(),
        }
    }

    pub fn raw(status: u16, body: &str) -> Self {
        Self::Body {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_owned(),
        }
    }

    /// An SSE body of `text` cut into `piece`-byte writes (splitting lines, CRLFs and UTF-8).
    pub fn sse(text: &str, piece: usize) -> Self {
        Self::sse_bytes(text.as_bytes(), piece)
    }

    /// Like [`Reply::sse`] for bytes that need not be UTF-8.
    pub fn sse_bytes(bytes: &[u8], piece: usize) -> Self {
        Self::Stream {
            pieces: bytes.chunks(piece.max(1)).map(<[u8]>::to_vec).collect(),
            gap: Duration::ZERO,
        }
    }
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    last: Option<Reply>,
    requests: Vec<Recorded>,
}

/// A scripted OpenAI-compatible server: answers each request with the next scripted reply and
/// repeats the last one when the script runs out (so "always 503" is a one-item script).
#[derive(Clone)]
pub struct Fake {
    script: Arc<Mutex<Script>>,
    pub addr: SocketAddr,
}

impl Fake {
    pub async fn start(replies: Vec<Reply>) -> Self {
        let script = Arc::new(Mutex::new(Script {
            replies: replies.into(),
            ..Script::default()
        }));
        let router = Router::new()
            .fallback(any(answer))
            .with_state(script.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { script, addr }
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.script.lock().expect("script").requests.clone()
    }
}

async fn answer(
    State(script): State<Arc<Mutex<Script>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut script = script.lock().expect("script");
        script.requests.push(Recorded {
            path: uri.path().to_owned(),
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        match script.replies.pop_front() {
            Some(reply) => {
                script.last = Some(reply.clone());
                Some(reply)
            }
            None => script.last.clone(),
        }
    };
    match reply {
        Some(reply) => respond(reply).await,
        None => plain(StatusCode::NOT_FOUND, Body::empty()),
    }
}

async fn respond(mut reply: Reply) -> Response {
    while let Reply::Delayed(pause, inner) = reply {
        tokio::time::sleep(pause).await;
        reply = *inner;
    }
    match reply {
        Reply::Body {
            status,
            headers,
            body,
        } => {
            let mut response = plain(
                StatusCode::from_u16(status).expect("status"),
                Body::from(body),
            );
            for (name, value) in headers {
                response
                    .headers_mut()
                    .insert(name, HeaderValue::from_str(&value).expect("header"));
            }
            response
        }
        Reply::Stream { pieces, gap } => {
            // The first piece goes at once, each later one `gap` after the previous.
            let stream = futures_util::stream::unfold(
                (pieces.into_iter(), true),
                move |(mut rest, first)| async move {
                    let piece = rest.next()?;
                    if !first {
                        if gap.is_zero() {
                            // Still a separate frame, so a separate read on the client side.
                            tokio::task::yield_now().await;
                        } else {
                            tokio::time::sleep(gap).await;
                        }
                    }
                    Some((Ok::<_, std::io::Error>(Bytes::from(piece)), (rest, false)))
                },
            );
            let mut response = plain(StatusCode::OK, Body::from_stream(stream));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            response
        }
        Reply::Delayed(..) => unreachable!("unwrapped above"),
    }
}

fn plain(status: StatusCode, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

/// Data points of histogram (or counter) `name` whose attributes include `server.port = port`, as JSON
/// (attributes flattened to a map), so a test sees only its own fake server's measurements.
pub fn histogram_points(name: &str, port: u16) -> Vec<Value> {
    let port = port.to_string();
    let mut out = Vec::new();
    for mut point in env().sink.metric_points(name) {
        let attrs = flatten_attributes(&point);
        if attrs.get("server.port") == Some(&port) {
            point["attrs"] = json!(attrs);
            out.push(point);
        }
    }
    out
}

fn flatten_attributes(point: &Value) -> HashMap<String, String> {
    point
        .get("attributes")
        .and_then(Value::as_array)
        .map(|attrs| {
            attrs
                .iter()
                .filter_map(|kv| {
                    let key = kv.get("key")?.as_str()?.to_owned();
                    let value = kv.get("value")?;
                    let text = ["stringValue", "intValue", "boolValue", "doubleValue"]
                        .iter()
                        .find_map(|k| value.get(*k))
                        .map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })?;
                    Some((key, text))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until histogram `name` has a point for `port` matching `pred`; returns the points.
pub async fn wait_for_points(name: &str, port: u16, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let ok = env()
        .sink
        .wait_until(WAIT, |_| pred(&histogram_points(name, port)))
        .await;
    let points = histogram_points(name, port);
    assert!(ok, "metric {name} for port {port}: {points:#?}");
    points
}

/// A number in a JSON data point, whether serialised as a number or a string.
pub fn num(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => s.parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}
