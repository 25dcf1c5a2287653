//! Entry point of the fraud service: telemetry, configuration, serve until SIGTERM.

use anyhow::Context as _;
use env_config::FromEnv as _;
use fraud::{AppState, Config, app};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let guard = telemetry::init(fraud::SERVICE)?;
    let config = Config::from_env().context("invalid configuration")?;
    let state = AppState::from_config(&config);
    service_kit::serve_on(config.port, app(state)).await?;
    // Flushes the last spans before the process exits.
    drop(guard);
    Ok(())
}
