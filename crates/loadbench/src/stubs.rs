//! What the services under load talk to: an OpenAI-compatible LLM that answers at once, and an
//! OTLP receiver (`otlp-sink` counting only) that accepts, refuses or never answers, so that
//! neither a model's latency nor a Collector's work hides the services' own cost.

use std::net::SocketAddr;

use axum::Json;
use axum::routing::post;
use otlp_sink::OtlpSink;
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

/// An OTLP receiver in `mode` on 127.0.0.1 that counts spans and keeps nothing.
pub(crate) async fn collector(mode: Collector) -> anyhow::Result<OtlpSink> {
    let sink = OtlpSink::start().await?;
    sink.set_count_only(true);
    sink.set_unavailable(mode == Collector::Unavailable);
    sink.set_stuck(mode == Collector::Stuck);
    Ok(sink)
}
