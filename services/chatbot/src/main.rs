//! Starts the chatbot: telemetry, configuration, clients, then serves until ctrl-c or SIGTERM.

use std::sync::Arc;

use anyhow::Context as _;
use chatbot::downstream::{HttpFraudScorer, HttpRecommender};
use chatbot::{AppState, Config, app};
use telemetry::{ServiceInfo, TracedClient};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let guard = telemetry::init(ServiceInfo {
        name: "chatbot",
        version: env!("CARGO_PKG_VERSION"),
        site: "Bangalore",
    })?;
    let config = Config::from_env().context("invalid configuration")?;
    let policy = guard.propagation_policy();
    let http = TracedClient::new(reqwest::Client::new(), policy.clone());
    let llm = llm_client::OpenAiClient::new(config.llm.clone(), policy)
        .context("building the LLM client")?;
    let state = AppState {
        llm: Arc::new(llm),
        fraud: Arc::new(HttpFraudScorer::new(
            http.clone(),
            &config.fraud_url,
            config.downstream_timeout,
        )),
        recommender: Arc::new(HttpRecommender::new(
            http,
            &config.recommendation_url,
            config.downstream_timeout,
        )),
        config: Arc::new(config.clone()),
    };
    service_kit::serve_on(config.port, app(state)).await?;
    drop(guard);
    Ok(())
}
