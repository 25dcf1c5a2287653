//! Starts the chatbot: telemetry, configuration, clients, then serves until ctrl-c or SIGTERM.

use anyhow::Context as _;
use chatbot::{AppState, Config, app};
use env_config::FromEnv as _;

// Many small, short-lived allocations per request (JSON, headers, span attributes): jemalloc
// serves them with less CPU than glibc's malloc, for about 1 MB more idle RSS (measured with
// loadbench, see README).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let guard = telemetry::init(chatbot::SERVICE)?;
    let config = Config::from_env().context("invalid configuration")?;
    let port = config.port;
    let state = AppState::from_config(config, guard.propagation_policy())
        .context("building the LLM client")?;
    service_kit::serve_on(port, app(state)).await?;
    // Flushes the last spans before the process exits.
    drop(guard);
    Ok(())
}
