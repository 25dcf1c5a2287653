//! What the services under load talk to: an OpenAI-compatible LLM that answers at once (so a
//! model's latency does not hide the services' own cost), and for the `stubs` role an OTLP
//! receiver (`otlp-sink`, counting only).

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

/// An OTLP receiver on 127.0.0.1 (gRPC and HTTP) that counts spans and keeps nothing, for the
/// `stubs` role: a service profiled by hand may export over either protocol. The measured runs use
/// the cheaper gRPC-only [`crate::receiver::Receiver`].
pub(crate) async fn collector() -> anyhow::Result<OtlpSink> {
    let sink = OtlpSink::start().await?;
    sink.set_count_only(true);
    Ok(sink)
}
