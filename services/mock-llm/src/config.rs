//! The mock LLM's settings, from `MOCK_LLM_*` variables.

use std::time::Duration;

use env_config::{FromEnv, Reader};

use crate::FaultMode;

/// Settings, from `MOCK_LLM_*` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `MOCK_LLM_PORT` (8090).
    pub port: u16,
    /// `MOCK_LLM_TTFT_MS` (250): time to the first token.
    pub ttft: Duration,
    /// `MOCK_LLM_TOKEN_DELAY_MS` (12): time between tokens after the first.
    pub token_delay: Duration,
    /// `MOCK_LLM_EMBED_DELAY_MS` (15): time per embeddings request.
    pub embed_delay: Duration,
    /// `MOCK_LLM_SLOW_MS` (15000): extra delay of a `slow` fault.
    pub slow: Duration,
    /// `MOCK_LLM_FAULT` (`none`): `none`, `429`, `500` or `slow`, for every model request.
    pub fault: FaultMode,
}

impl FromEnv for Config {
    /// Reads every variable; a malformed or out-of-range value is recorded, so the service
    /// never starts on a typo.
    fn read(env: &mut Reader<'_>) -> Self {
        Self {
            port: env.parse_or("MOCK_LLM_PORT", 8090),
            ttft: env.millis_or("MOCK_LLM_TTFT_MS", 250),
            token_delay: env.millis_or("MOCK_LLM_TOKEN_DELAY_MS", 12),
            embed_delay: env.millis_or("MOCK_LLM_EMBED_DELAY_MS", 15),
            slow: env.millis_or("MOCK_LLM_SLOW_MS", 15_000),
            fault: env.parse_or("MOCK_LLM_FAULT", FaultMode::None),
        }
    }
}

impl Config {
    /// Defaults without any delay, for tests.
    pub fn for_tests() -> Self {
        Self {
            port: 0,
            ttft: Duration::ZERO,
            token_delay: Duration::ZERO,
            embed_delay: Duration::ZERO,
            slow: Duration::ZERO,
            fault: FaultMode::None,
        }
    }
}
