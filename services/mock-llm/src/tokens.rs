//! Real token counts: `o200k_base` (gpt-4o-mini) for chat and `cl100k_base`
//! (text-embedding-3-small) for embeddings, so the usage a trace records is what OpenAI would
//! bill for the same request.

use std::fmt;

use tiktoken_rs::CoreBPE;

/// Framing tokens around every chat message for gpt-4o models (`<|start|>role<|message|>…<|end|>`).
pub(crate) const TOKENS_PER_MESSAGE: usize = 3;
/// Extra token when a message carries a `name`.
pub(crate) const TOKENS_PER_NAME: usize = 1;
/// `<|start|>assistant<|message|>`, which primes every reply.
pub(crate) const REPLY_PRIMING: usize = 3;

/// One chat message as far as token counting is concerned.
#[derive(Debug, Clone, Copy)]
pub struct CountedMessage<'a> {
    /// `system`, `user`, ...
    pub role: &'a str,
    /// The text content.
    pub content: &'a str,
    /// The optional participant name.
    pub name: Option<&'a str>,
}

/// Both vocabularies, loaded once at start-up (building one takes a noticeable fraction of a
/// second, far too slow per request).
pub struct Tokenizers {
    chat: CoreBPE,
    embedding: CoreBPE,
}

impl fmt::Debug for Tokenizers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tokenizers { chat: o200k_base, embedding: cl100k_base }")
    }
}

/// The bundled vocabularies could not be loaded (a broken build, not a runtime condition).
#[derive(Debug, thiserror::Error)]
#[error("loading the bundled tokenizer failed: {0}")]
pub struct TokenizerError(String);

impl Tokenizers {
    /// Builds both vocabularies from the tables bundled in `tiktoken-rs`.
    pub fn load() -> Result<Self, TokenizerError> {
        Ok(Self {
            chat: tiktoken_rs::o200k_base().map_err(|e| TokenizerError(e.to_string()))?,
            embedding: tiktoken_rs::cl100k_base().map_err(|e| TokenizerError(e.to_string()))?,
        })
    }

    /// The chat (`o200k_base`) tokens of `text`. Text that looks like a special token is
    /// counted as plain text, as the API does for message content.
    pub fn chat_tokens(&self, text: &str) -> Vec<u32> {
        self.chat.encode_ordinary(text)
    }

    /// How many chat tokens `text` has.
    pub fn count_chat(&self, text: &str) -> usize {
        self.chat.encode_ordinary(text).len()
    }

    /// OpenAI's prompt token count for gpt-4o models: per message 3 framing tokens plus the
    /// tokens of role and content (and 1 + the name's tokens with a name), plus 3 for the reply.
    pub fn count_chat_prompt(&self, messages: &[CountedMessage<'_>]) -> usize {
        let per_message: usize = messages
            .iter()
            .map(|m| {
                let name = m.name.map_or(0, |n| TOKENS_PER_NAME + self.count_chat(n));
                TOKENS_PER_MESSAGE + self.count_chat(m.role) + self.count_chat(m.content) + name
            })
            .sum();
        per_message + REPLY_PRIMING
    }

    /// The bytes of one chat token (a token may hold part of a UTF-8 character).
    pub fn chat_token_bytes(&self, token: u32) -> Option<Vec<u8>> {
        self.chat.decode_bytes(&[token]).ok()
    }

    /// The first `limit` chat tokens of `text`, as text (a character cut in half is replaced,
    /// as a model stopped by `max_tokens` can leave one).
    pub fn truncate_chat(&self, text: &str, limit: usize) -> String {
        let tokens = self.chat.encode_ordinary(text);
        let kept = &tokens[..limit.min(tokens.len())];
        let bytes = self.chat.decode_bytes(kept).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// How many embedding (`cl100k_base`) tokens `text` has.
    pub fn count_embedding(&self, text: &str) -> usize {
        self.embedding.encode_ordinary(text).len()
    }

    /// The text of embedding tokens (the API also accepts token arrays as input), or `None` for
    /// unknown ids or bytes that are not UTF-8.
    pub fn decode_embedding(&self, tokens: &[u32]) -> Option<String> {
        self.embedding.decode(tokens).ok()
    }
}

/// Splits `text` into the pieces a streaming model would send: one per token, except that
/// tokens holding part of a multi-byte character are merged so every piece is valid UTF-8.
pub(crate) fn stream_pieces(tokenizers: &Tokenizers, text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for token in tokenizers.chat_tokens(text) {
        if let Some(bytes) = tokenizers.chat_token_bytes(token) {
            pending.extend_from_slice(&bytes);
        }
        if let Ok(piece) = std::str::from_utf8(&pending) {
            pieces.push(piece.to_owned());
            pending.clear();
        }
    }
    if !pending.is_empty() {
        pieces.push(String::from_utf8_lossy(&pending).into_owned());
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::sync::LazyLock;

    static TOKENIZERS: LazyLock<std::sync::Arc<Tokenizers>> =
        LazyLock::new(crate::test_support::tokenizers);

    // Reference ids from OpenAI's tiktoken (`tiktoken.get_encoding(...).encode(text)`).
    #[rstest]
    #[case::o200k_hello_world("hello world", &[24912, 2375])]
    fn chat_tokens_match_tiktoken(#[case] text: &str, #[case] expected: &[u32]) {
        assert_eq!(TOKENIZERS.chat_tokens(text), expected);
    }

    #[test]
    fn embedding_tokens_match_tiktoken() {
        // cl100k_base("hello world") = [15339, 1917].
        assert_eq!(TOKENIZERS.count_embedding("hello world"), 2);
        assert_eq!(
            TOKENIZERS.decode_embedding(&[15339, 1917]).as_deref(),
            Some("hello world")
        );
    }

    #[test]
    fn prompt_count_matches_the_openai_cookbook_for_gpt_4o() {
        // The cookbook's example conversation ("How to count tokens with tiktoken"): the API
        // reported 124 prompt tokens for it with gpt-4o and gpt-4o-mini.
        let m = |role, name, content| CountedMessage {
            role,
            content,
            name,
        };
        let messages = [
            m(
                "system",
                None,
                "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
            ),
            m(
                "system",
                Some("example_user"),
                "New synergies will help drive top-line growth.",
            ),
            m(
                "system",
                Some("example_assistant"),
                "Things working well together will increase revenue.",
            ),
            m(
                "system",
                Some("example_user"),
                "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
            ),
            m(
                "system",
                Some("example_assistant"),
                "Let's talk later when we're less busy about how to do better.",
            ),
            m(
                "user",
                None,
                "This late pivot means we don't have time to boil the ocean for the client deliverable.",
            ),
        ];
        assert_eq!(TOKENIZERS.count_chat_prompt(&messages), 124);
    }

    #[test]
    fn prompt_count_is_framing_plus_role_plus_content() {
        let messages = [CountedMessage {
            role: "user",
            content: "hello world",
            name: None,
        }];
        // 3 framing + 1 ("user") + 2 ("hello world") + 3 priming.
        assert_eq!(TOKENIZERS.count_chat_prompt(&messages), 9);
    }

    #[test]
    fn truncation_keeps_the_first_tokens() {
        assert_eq!(TOKENIZERS.truncate_chat("hello world", 1), "hello");
        assert_eq!(TOKENIZERS.truncate_chat("hello world", 5), "hello world");
    }

    #[test]
    fn special_token_text_in_content_is_plain_text() {
        assert!(TOKENIZERS.count_chat("<|endoftext|>") > 1);
    }

    #[test]
    fn stream_pieces_rebuild_the_text_and_keep_characters_whole() {
        for text in ["Rs 85000 at the Mumbai warehouse.", "₹85,000 — नमस्ते 🙂", ""]
        {
            let pieces = stream_pieces(&TOKENIZERS, text);
            assert_eq!(pieces.concat(), text);
            assert!(pieces.len() <= TOKENIZERS.count_chat(text));
        }
        let seed =
            "The Samsung 65 QLED is priced at Rs 85000 and is available at the Mumbai warehouse.";
        assert_eq!(
            stream_pieces(&TOKENIZERS, seed).len(),
            TOKENIZERS.count_chat(seed)
        );
    }
}
