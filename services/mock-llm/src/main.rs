//! The mock LLM server: `MOCK_LLM_*` settings (see [`mock_llm::Config`]), listening on
//! `0.0.0.0:$MOCK_LLM_PORT` until ctrl-c or SIGTERM.

use anyhow::Context as _;
use env_config::FromEnv as _;
use mock_llm::{AppState, Config, app};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs only: the mock plays an external provider, so it makes no spans of its own.
    let _telemetry = telemetry::init(mock_llm::SERVICE)?;
    let config = Config::from_env().context("invalid MOCK_LLM_* setting")?;
    let state = AppState::from_config(config.clone()).context("loading the tokenizers")?;
    tracing::info!(
        ttft_ms = config.ttft.as_millis(),
        token_delay_ms = config.token_delay.as_millis(),
        embed_delay_ms = config.embed_delay.as_millis(),
        slow_ms = config.slow.as_millis(),
        fault = ?config.fault,
        "mock_llm.config"
    );
    service_kit::serve_on(config.port, app(state)).await?;
    Ok(())
}
