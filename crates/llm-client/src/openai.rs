//! The OpenAI-compatible HTTP implementation (being written).

/// Placeholder until the implementation lands.
#[derive(Debug)]
pub struct OpenAiClient;
