//! What the services under load talk to: an OpenAI-compatible LLM that answers at once, and an
//! OTLP/gRPC receiver that only counts what it is sent (or refuses, or never answers), so that
//! neither a model's latency nor a Collector's work hides the services' own cost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Dimensions of the stub's embeddings: small, so the stub costs little.
const DIMS: usize = 8;

/// Serves the zero-latency LLM on 127.0.0.1; returns its address.
pub(crate) async fn llm() -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

async fn chat(Json(request): Json<Value>) -> Json<Value> {
    let model = request["model"]
        .as_str()
        .unwrap_or("gpt-4o-mini")
        .to_owned();
    Json(json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "The Samsung 65 QLED is priced at Rs 85000 and is available at the Mumbai warehouse."},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 300, "completion_tokens": 20, "total_tokens": 320}
    }))
}

async fn embeddings(Json(request): Json<Value>) -> Json<Value> {
    let inputs = match &request["input"] {
        Value::Array(items) => items.len(),
        _ => 1,
    };
    let data: Vec<Value> = (0..inputs)
        .map(|i| {
            // Distinct unit-ish vectors, so ranking has something to sort.
            let vector: Vec<f32> = (0..DIMS)
                .map(|d| if d == i % DIMS { 1.0 } else { 0.1 })
                .collect();
            json!({"object": "embedding", "index": i, "embedding": vector})
        })
        .collect();
    Json(json!({
        "object": "list",
        "data": data,
        "model": request["model"].as_str().unwrap_or("text-embedding-3-small"),
        "usage": {"prompt_tokens": 8, "total_tokens": 8}
    }))
}

/// How the OTLP receiver behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Collector {
    /// Accepts and counts.
    Up,
    /// Answers every export with gRPC UNAVAILABLE (a Collector shedding load).
    Unavailable,
    /// Accepts connections and never answers (a Collector that hangs).
    Stuck,
}

/// Spans, metric points and log records received.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) spans: AtomicU64,
    pub(crate) exports: AtomicU64,
}

#[derive(Debug, Clone)]
struct Receiver {
    mode: Collector,
    counts: Arc<Counts>,
}

impl Receiver {
    async fn gate(&self) -> Result<(), tonic::Status> {
        self.counts.exports.fetch_add(1, Ordering::Relaxed);
        match self.mode {
            Collector::Up => Ok(()),
            Collector::Unavailable => Err(tonic::Status::unavailable("load shedding")),
            Collector::Stuck => std::future::pending().await,
        }
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.gate().await?;
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.counts
            .spans
            .fetch_add(u64::try_from(spans).unwrap_or(u64::MAX), Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        _request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.gate().await?;
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Receiver {
    async fn export(
        &self,
        _request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.gate().await?;
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// Serves an OTLP/gRPC receiver in `mode` on 127.0.0.1; returns its address and counters.
pub(crate) async fn collector(mode: Collector) -> anyhow::Result<(SocketAddr, Arc<Counts>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let counts = Arc::new(Counts::default());
    let receiver = Receiver {
        mode,
        counts: counts.clone(),
    };
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .add_service(MetricsServiceServer::new(receiver.clone()))
            .add_service(LogsServiceServer::new(receiver))
            .serve_with_incoming(incoming)
            .await
    });
    Ok((addr, counts))
}
