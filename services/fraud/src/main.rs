//! Entry point of the fraud service: telemetry, configuration, serve until SIGTERM.

use fraud::{AppState, Config, app};

use anyhow::Context as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let guard = telemetry::init(telemetry::ServiceInfo {
        name: "fraud",
        version: env!("CARGO_PKG_VERSION"),
        site: "Hyderabad",
    })?;
    let config = Config::from_env().context("invalid configuration")?;
    let state = AppState::new(&config);
    service_kit::serve_on(config.port, app(state)).await?;
    // Flushes the last spans before the process exits.
    drop(guard);
    Ok(())
}
