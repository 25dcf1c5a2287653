//! Runs the W3C Trace Context test harness service on 127.0.0.1 (port `PORT`, default 7777).
//! See README.md, "W3C conformance", for running the official test suite against it.

// The harness lives beside this example, not in the library: it is test tooling, and
// tests/propagation.rs drives the same code.
#[path = "w3c_harness/mod.rs"]
mod w3c_harness;

use anyhow::Context as _;
use telemetry::{ServiceInfo, TelemetryConfig, TracedClient};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = ServiceInfo {
        name: "w3c-conformance",
        version: env!("CARGO_PKG_VERSION"),
        site: "local",
    };
    let config = TelemetryConfig::from_env(&service);
    let policy = config.propagation.clone();
    let _guard = telemetry::init_with(service, config)?;

    let port: u16 = std::env::var("PORT")
        .ok()
        .map(|p| p.parse())
        .transpose()
        .context("PORT must be a port number")?
        .unwrap_or(7777);
    let client = TracedClient::new(reqwest::Client::new(), policy);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!(address = %listener.local_addr()?, "w3c_harness.listening");
    axum::serve(listener, w3c_harness::router(client))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
