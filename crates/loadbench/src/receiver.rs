//! The benchmark's OTLP/gRPC receiver: it counts spans and keeps nothing, and can refuse every
//! export (`UNAVAILABLE`) or never answer.
//!
//! Why not `otlp-sink`, which the tests use: tonic decodes each export request into the
//! generated OTLP messages before a handler sees it, allocating every attribute key and value.
//! That receiver runs in this process, on the same two cores as the services, so its decoding
//! (about 40 µs per chat request in the bench column of the README's tables) was charged to
//! tracing in the throughput ratio, although a real Collector runs elsewhere. This receiver is the
//! "minimal OTLP/gRPC receiver that only counts spans" the benchmark calls for: prost decodes each
//! trace request into messages that declare only the fields leading to spans
//! (`resource_spans` → `scope_spans` → `spans`) and skips everything else on the wire; metric and
//! log requests are answered without being decoded. gRPC framing is written here because it is
//! five bytes and a trailer.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Response, header};
use axum::routing::post;
use http_body_util::{BodyExt as _, Full};
use prost::Message as _;
use tokio::net::TcpListener;

/// `ExportTraceServiceRequest`, with only the path to the spans.
#[derive(Clone, PartialEq, prost::Message)]
struct TraceRequest {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceSpans>,
}

/// `ResourceSpans`: the resource (1) and schema URL (3) are skipped.
#[derive(Clone, PartialEq, prost::Message)]
struct ResourceSpans {
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeSpans>,
}

/// `ScopeSpans`: the scope (1) and schema URL (3) are skipped.
#[derive(Clone, PartialEq, prost::Message)]
struct ScopeSpans {
    #[prost(message, repeated, tag = "2")]
    spans: Vec<Span>,
}

/// A `Span` with every field skipped: zero-sized, so counting allocates nothing per span.
#[derive(Clone, PartialEq, prost::Message)]
struct Span {}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Accepts and counts.
    Up,
    /// Answers every export with gRPC UNAVAILABLE (a Collector shedding load).
    Unavailable,
    /// Accepts connections and never answers (a Collector that hangs).
    Stuck,
}

/// A running receiver; it serves until the runtime stops.
#[derive(Debug, Clone)]
pub(crate) struct Receiver {
    addr: SocketAddr,
    spans: Arc<AtomicU64>,
}

#[derive(Debug, Clone)]
struct Shared {
    mode: Mode,
    spans: Arc<AtomicU64>,
}

/// gRPC status codes used here.
const OK: &str = "0";
const INVALID_ARGUMENT: &str = "3";
const UNIMPLEMENTED: &str = "12";
const UNAVAILABLE: &str = "14";

impl Receiver {
    /// Binds 127.0.0.1 on a free port and serves OTLP/gRPC (HTTP/2 without TLS) in `mode`.
    pub(crate) async fn start(mode: Mode) -> anyhow::Result<Self> {
        let spans = Arc::new(AtomicU64::new(0));
        let shared = Shared {
            mode,
            spans: spans.clone(),
        };
        let app = Router::new()
            .route(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                post(traces),
            )
            .route(
                "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                post(other),
            )
            .route(
                "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                post(other),
            )
            // axum's 2 MiB default would answer a large batch with HTTP 413, and its spans would be
            // lost uncounted: allow far more than any batch of 512 spans.
            .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(shared);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { addr, spans })
    }

    /// The endpoint for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Spans accepted so far.
    pub(crate) fn span_count(&self) -> u64 {
        self.spans.load(Ordering::Relaxed)
    }
}

async fn traces(State(shared): State<Shared>, body: Bytes) -> Response<Body> {
    answer(shared.mode, || match message(&body) {
        Err(status) => Err(status),
        Ok(message) => match TraceRequest::decode(message) {
            Err(_) => Err(INVALID_ARGUMENT),
            Ok(request) => {
                let spans: usize = request
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len())
                    .sum();
                shared
                    .spans
                    .fetch_add(u64::try_from(spans).unwrap_or(u64::MAX), Ordering::Relaxed);
                Ok(())
            }
        },
    })
    .await
}

async fn other(State(shared): State<Shared>, body: Bytes) -> Response<Body> {
    answer(shared.mode, || message(&body).map(|_| ())).await
}

/// The one message of a unary gRPC request body: a flag byte (1 = compressed), a 4-byte
/// big-endian length, the message. Compressed messages are refused: the benchmark never asks for
/// compression, and counting them would mean inflating them.
fn message(body: &[u8]) -> Result<&[u8], &'static str> {
    let (&flag, rest) = body.split_first().ok_or(INVALID_ARGUMENT)?;
    let (len, message) = rest.split_at_checked(4).ok_or(INVALID_ARGUMENT)?;
    let len = u32::from_be_bytes(len.try_into().map_err(|_| INVALID_ARGUMENT)?);
    if flag != 0 {
        return Err(UNIMPLEMENTED);
    }
    match usize::try_from(len) {
        Ok(len) if len == message.len() => Ok(message),
        _ => Err(INVALID_ARGUMENT),
    }
}

fn answer(
    mode: Mode,
    accept: impl FnOnce() -> Result<(), &'static str>,
) -> impl Future<Output = Response<Body>> {
    let status = match mode {
        Mode::Up => accept().err(),
        Mode::Unavailable => Some(UNAVAILABLE),
        Mode::Stuck => None,
    };
    async move {
        if mode == Mode::Stuck {
            std::future::pending::<()>().await;
        }
        match status {
            // An empty `Export*ServiceResponse` (full success) in one uncompressed frame, then the
            // status in the trailers.
            None => {
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static(OK));
                let body = Full::new(Bytes::from_static(&[0; 5]))
                    .with_trailers(async move { Some(Ok(trailers)) });
                grpc_response(Body::new(body), None)
            }
            // Trailers-Only: the status in the headers of a response with no body.
            Some(code) => {
                let mut response = grpc_response(Body::empty(), Some(code));
                if code == UNIMPLEMENTED {
                    // gRPC's compression spec: say which encodings are accepted.
                    response
                        .headers_mut()
                        .insert("grpc-accept-encoding", HeaderValue::from_static("identity"));
                }
                response
            }
        }
    }
}

fn grpc_response(body: Body, status: Option<&'static str>) -> Response<Body> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    if let Some(code) = status {
        headers.insert("grpc-status", HeaderValue::from_static(code));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{
        ResourceSpans as ProtoResourceSpans, ScopeSpans as ProtoScopeSpans, Span as ProtoSpan,
    };

    fn request(spans_per_scope: &[usize]) -> ExportTraceServiceRequest {
        let attribute = KeyValue {
            key: "service.name".to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("chatbot".to_owned())),
            }),
            ..KeyValue::default()
        };
        let span = ProtoSpan {
            name: "POST /v1/chat".to_owned(),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            attributes: vec![attribute.clone()],
            ..ProtoSpan::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ProtoResourceSpans {
                resource: Some(Resource {
                    attributes: vec![attribute],
                    ..Resource::default()
                }),
                scope_spans: spans_per_scope
                    .iter()
                    .map(|&n| ProtoScopeSpans {
                        spans: vec![span.clone(); n],
                        ..ProtoScopeSpans::default()
                    })
                    .collect(),
                schema_url: "https://opentelemetry.io/schemas/1.37.0".to_owned(),
            }],
        }
    }

    #[tokio::test]
    async fn an_accepting_receiver_counts_every_span_a_real_grpc_client_sends() {
        let receiver = Receiver::start(Mode::Up).await.unwrap();
        let mut client = TraceServiceClient::connect(receiver.endpoint())
            .await
            .unwrap();
        client.export(request(&[3, 0, 4])).await.unwrap();
        client.export(request(&[5])).await.unwrap();
        assert_eq!(receiver.span_count(), 12);
    }

    #[tokio::test]
    async fn metric_and_log_exports_are_accepted_without_counting_spans() {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;

        let receiver = Receiver::start(Mode::Up).await.unwrap();
        let mut metrics = MetricsServiceClient::connect(receiver.endpoint())
            .await
            .unwrap();
        metrics
            .export(ExportMetricsServiceRequest::default())
            .await
            .unwrap();
        let mut logs = LogsServiceClient::connect(receiver.endpoint())
            .await
            .unwrap();
        logs.export(ExportLogsServiceRequest::default())
            .await
            .unwrap();
        assert_eq!(receiver.span_count(), 0);
    }

    #[tokio::test]
    async fn a_refusing_receiver_answers_unavailable_and_counts_nothing() {
        let receiver = Receiver::start(Mode::Unavailable).await.unwrap();
        let mut client = TraceServiceClient::connect(receiver.endpoint())
            .await
            .unwrap();
        let status = client.export(request(&[2])).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(receiver.span_count(), 0);
    }

    #[tokio::test]
    async fn a_stuck_receiver_never_answers() {
        let receiver = Receiver::start(Mode::Stuck).await.unwrap();
        let mut client = TraceServiceClient::connect(receiver.endpoint())
            .await
            .unwrap();
        let export = client.export(request(&[1]));
        let waited = tokio::time::timeout(std::time::Duration::from_millis(300), export).await;
        assert!(waited.is_err(), "a stuck receiver answered");
    }

    #[test]
    fn a_compressed_or_truncated_frame_is_refused() {
        assert_eq!(message(&[1, 0, 0, 0, 0]), Err(UNIMPLEMENTED));
        assert_eq!(message(&[0, 0, 0, 0, 9, 1]), Err(INVALID_ARGUMENT));
        assert_eq!(message(&[0, 0]), Err(INVALID_ARGUMENT));
        assert_eq!(message(&[0, 0, 0, 0, 1, 7]), Ok(&[7][..]));
    }
}
