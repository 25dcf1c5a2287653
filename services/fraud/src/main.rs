//! Entry point of the fraud service: telemetry, configuration, serve until SIGTERM.

use anyhow::Context as _;
use env_config::FromEnv as _;
use fraud::{AppState, Config, app};

// Many small, short-lived allocations per request (JSON, headers, span attributes): jemalloc
// serves them with less CPU than glibc's malloc, for about 1 MB more idle RSS (measured with
// loadbench, see README).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
