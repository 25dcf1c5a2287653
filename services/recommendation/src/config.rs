//! The recommendation service's settings, from the environment.

use std::time::Duration;

use env_config::{FromEnv, Reader};
use llm_client::LlmConfig;

/// Service settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PORT` (8081).
    pub port: u16,
    /// `RECOMMENDATION_EMBED_BATCH` (16): catalog texts per embeddings request at start-up.
    pub embed_batch: usize,
    /// `RECOMMENDATION_EMBED_TIMEOUT_MS` (10000): deadline of one embeddings call, the LLM
    /// client's own retries included, so a stuck server can never hang a request.
    pub embed_timeout: Duration,
    /// `RECOMMENDATION_INDEX_RETRY_INITIAL_MS` (500): first wait after a failed catalog
    /// embedding; doubles per failure.
    pub index_retry_initial: Duration,
    /// `RECOMMENDATION_INDEX_RETRY_MAX_MS` (30000): longest wait between catalog embedding
    /// attempts.
    pub index_retry_max: Duration,
    /// The LLM client's settings (`LLM_BASE_URL`, `LLM_EMBEDDING_MODEL`, ...).
    pub llm: LlmConfig,
    /// The demo's fault knobs (`FAULT_LATENCY_MS`, `FAULT_ERROR_RATE`, `FAULT_ADMIN`).
    pub faults: service_kit::FaultConfig,
}

impl FromEnv for Config {
    /// Reads every variable; a malformed or out-of-range value is recorded, so the service
    /// never starts on a typo.
    fn read(env: &mut Reader<'_>) -> Self {
        let index_retry_initial =
            env.positive_millis_or("RECOMMENDATION_INDEX_RETRY_INITIAL_MS", 500);
        let index_retry_max = env.positive_millis_or("RECOMMENDATION_INDEX_RETRY_MAX_MS", 30_000);
        env.check(
            "RECOMMENDATION_INDEX_RETRY_INITIAL_MS",
            index_retry_initial <= index_retry_max,
            "must not exceed RECOMMENDATION_INDEX_RETRY_MAX_MS",
        );
        let port = env.parse_or("PORT", 8081);
        let embed_batch = env.range_or("RECOMMENDATION_EMBED_BATCH", 16, 1..=2048);
        let embed_timeout = env.positive_millis_or("RECOMMENDATION_EMBED_TIMEOUT_MS", 10_000);
        let llm = LlmConfig::read(env);
        let faults = service_kit::FaultConfig::read(env);
        Self {
            port,
            embed_batch,
            embed_timeout,
            index_retry_initial,
            index_retry_max,
            llm,
            faults,
        }
    }
}
