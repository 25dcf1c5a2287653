//! The bare baseline: the same three hops as ShopMax (front → fraud and recommendation at once,
//! recommendation → embeddings, front → chat completion) in plain axum + reqwest, with no
//! telemetry and no validation. Each runs as its own process, like the real services.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Hops {
    client: reqwest::Client,
    fraud: String,
    recommendation: String,
    llm: String,
}

/// Which bare service to run.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Role {
    /// Takes the question, calls the other two and the LLM.
    Front,
    /// Answers a fixed allow verdict.
    Fraud,
    /// Embeds the query with the LLM and answers one product.
    Recommendation,
}

/// Serves `role` on `port` until killed.
pub(crate) async fn serve(role: Role, port: u16, upstreams: [String; 3]) -> anyhow::Result<()> {
    let [fraud, recommendation, llm] = upstreams;
    let hops = Hops {
        client: reqwest::Client::new(),
        fraud,
        recommendation,
        llm,
    };
    let app = match role {
        Role::Front => axum::Router::new().route("/v1/chat", post(front)),
        Role::Fraud => axum::Router::new().route("/v1/score", post(score)),
        Role::Recommendation => axum::Router::new().route("/v1/recommend", post(recommend)),
    }
    .route("/readyz", axum::routing::get(|| async { "ready" }))
    .with_state(hops);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> reqwest::Result<Value> {
    client.post(url).json(body).send().await?.json().await
}

async fn front(State(hops): State<Hops>, Json(request): Json<Value>) -> Json<Value> {
    let question = request["question"].clone();
    let score =
        json!({"customer_id": request["customer_id"], "session_id": "s", "question": question});
    let recommend = json!({"query": question, "top_k": 3});
    let (score_url, recommend_url) = (
        format!("{}/v1/score", hops.fraud),
        format!("{}/v1/recommend", hops.recommendation),
    );
    let (verdict, products) = tokio::join!(
        post_json(&hops.client, &score_url, &score),
        post_json(&hops.client, &recommend_url, &recommend),
    );
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]});
    let answer = post_json(
        &hops.client,
        &format!("{}/chat/completions", hops.llm),
        &chat,
    )
    .await;
    Json(json!({
        "answer": answer.ok().map(|a| a["choices"][0]["message"]["content"].clone()),
        "fraud": verdict.ok(),
        "products": products.ok(),
    }))
}

async fn score(Json(_request): Json<Value>) -> Json<Value> {
    Json(json!({"risk_score": 0.0, "decision": "allow", "reasons": []}))
}

async fn recommend(State(hops): State<Hops>, Json(request): Json<Value>) -> Json<Value> {
    let body = json!({"model": "text-embedding-3-small", "input": [request["query"]]});
    let embedding = post_json(&hops.client, &format!("{}/embeddings", hops.llm), &body).await;
    Json(json!({
        "products": [{"id": "samsung-65-qled", "score": embedding.is_ok()}],
        "related": [],
    }))
}
