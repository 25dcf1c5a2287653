//! Entry point of the recommendation service: telemetry, configuration, background catalog
//! embedding, serve until SIGTERM.

use anyhow::Context as _;
use env_config::FromEnv as _;
use recommendation::{AppState, Config, app};

// Many small, short-lived allocations per request (JSON, headers, span attributes): jemalloc
// serves them with less CPU than glibc's malloc, for about 1 MB more idle RSS (measured with
// loadbench, see README).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
