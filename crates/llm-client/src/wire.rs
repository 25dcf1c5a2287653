//! The OpenAI-compatible wire format: request bodies we send and the parts of responses we read.
//!
//! Response types are lenient (every field optional, unknown fields ignored) because
//! "OpenAI-compatible" servers differ in what they leave out; what we cannot do without is
//! checked where it is used.

use serde::{Deserialize, Serialize};

use crate::{ChatMessage, Usage};

/// `POST /chat/completions` body.
#[derive(Debug, Serialize)]
pub(crate) struct ChatBody<'a> {
    pub(crate) model: &'a str,
    pub(crate) messages: &'a [ChatMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stream_options: Option<StreamOptions>,
}

/// `stream_options`: asks for a final chunk with usage, which OpenAI omits by default.
#[derive(Debug, Serialize)]
pub(crate) struct StreamOptions {
    pub(crate) include_usage: bool,
}

/// `POST /embeddings` body.
#[derive(Debug, Serialize)]
pub(crate) struct EmbeddingsBody<'a> {
    pub(crate) model: &'a str,
    pub(crate) input: &'a [String],
}

/// `usage` as servers send it; `total_tokens` is missing on some.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub(crate) prompt_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) completion_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) total_tokens: Option<u64>,
    /// OpenAI's `prompt_tokens_details`; `null` from some servers.
    #[serde(default)]
    pub(crate) prompt_tokens_details: Option<PromptTokensDetails>,
}

/// `usage.prompt_tokens_details`: how many prompt tokens came from the prompt cache.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(crate) struct PromptTokensDetails {
    #[serde(default)]
    pub(crate) cached_tokens: Option<u64>,
}

impl WireUsage {
    pub(crate) fn to_usage(self) -> Usage {
        let prompt = self.prompt_tokens.unwrap_or(0);
        let completion = self.completion_tokens.unwrap_or(0);
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: self
                .total_tokens
                .unwrap_or_else(|| prompt.saturating_add(completion)),
            cached_prompt_tokens: self.prompt_tokens_details.and_then(|d| d.cached_tokens),
        }
    }
}

/// A non-streamed chat completion.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatCompletion {
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) model: Option<String>,
    /// `null` from some proxies, hence the `Option`.
    #[serde(default)]
    pub(crate) choices: Option<Vec<Choice>>,
    #[serde(default)]
    pub(crate) usage: Option<WireUsage>,
}

/// One choice of a non-streamed completion.
#[derive(Debug, Deserialize)]
pub(crate) struct Choice {
    #[serde(default)]
    pub(crate) index: Option<u64>,
    #[serde(default)]
    pub(crate) message: Option<ChoiceMessage>,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
}

/// The message of a choice; `content` is null when the model only calls tools.
#[derive(Debug, Deserialize)]
pub(crate) struct ChoiceMessage {
    #[serde(default)]
    pub(crate) content: Option<String>,
}

/// One `data:` event of a streamed completion.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatChunk {
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) model: Option<String>,
    /// Empty in the usage chunk, `null` from some proxies.
    #[serde(default)]
    pub(crate) choices: Option<Vec<ChunkChoice>>,
    #[serde(default)]
    pub(crate) usage: Option<WireUsage>,
    /// Some servers report a failure mid-stream as an event with an `error` object.
    #[serde(default)]
    pub(crate) error: Option<serde_json::Value>,
}

/// One choice of a chunk.
#[derive(Debug, Deserialize)]
pub(crate) struct ChunkChoice {
    #[serde(default)]
    pub(crate) index: Option<u64>,
    #[serde(default)]
    pub(crate) delta: Option<ChunkDelta>,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
}

/// The new text of a chunk.
#[derive(Debug, Deserialize)]
pub(crate) struct ChunkDelta {
    #[serde(default)]
    pub(crate) content: Option<String>,
}

/// An embeddings response.
#[derive(Debug, Deserialize)]
pub(crate) struct EmbeddingsResponse {
    #[serde(default)]
    pub(crate) data: Vec<EmbeddingItem>,
    #[serde(default)]
    pub(crate) model: Option<String>,
    #[serde(default)]
    pub(crate) usage: Option<WireUsage>,
}

/// One vector; `index` says which input it belongs to (the order is not guaranteed).
#[derive(Debug, Deserialize)]
pub(crate) struct EmbeddingItem {
    pub(crate) index: usize,
    pub(crate) embedding: Vec<f32>,
}
