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
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.port))
        .await
        .with_context(|| format!("binding port {}", config.port))?;
    tracing::info!(port = config.port, "service.started");
    service_kit::serve(listener, app(state)).await?;
    tracing::info!("service.stopped");
    // Flushes the last spans before the process exits.
    drop(guard);
    Ok(())
}
