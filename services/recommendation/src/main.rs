//! Entry point of the recommendation service: telemetry, configuration, background catalog
//! embedding, serve until SIGTERM.

use anyhow::Context as _;
use env_config::FromEnv as _;
use recommendation::{AppState, Config, app};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let guard = telemetry::init(recommendation::SERVICE)?;
    let config = Config::from_env().context("invalid configuration")?;
    let state = AppState::from_config(&config, guard.propagation_policy())
        .context("building the embeddings client")?;
    // Not awaited: the service listens (and answers 503) while the LLM server comes up.
    let _indexing = state.spawn_indexing();
    service_kit::serve_on(config.port, app(state)).await?;
    // Flushes the last spans before the process exits.
    drop(guard);
    Ok(())
}
