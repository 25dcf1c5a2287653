//! Reading and parsing response bodies: bounded reads, plain completions and embeddings, and
//! JSON errors that never quote what the server sent.

use crate::wire;
use crate::{ChatResponse, Embeddings, LlmError, Usage};

/// Largest chat completion body we read; far above any real answer, small enough to be safe.
pub(crate) const MAX_CHAT_BODY: usize = 8 * 1024 * 1024;
/// Largest embeddings body: a batch of large vectors as JSON text legitimately runs to tens of
/// megabytes (256 inputs × 3072 floats ≈ 16 MB).
pub(crate) const MAX_EMBEDDINGS_BODY: usize = 32 * 1024 * 1024;

/// The error for a body over `limit` bytes.
pub(crate) fn too_large(limit: usize) -> LlmError {
    LlmError::InvalidResponse(format!("the response body exceeds {limit} bytes"))
}

/// Why a body could not be read.
pub(crate) enum ReadError {
    Transport(reqwest::Error),
    TooLarge,
}

/// Reads the whole body, refusing more than `limit` bytes (checked before and while reading,
/// since `Content-Length` may be absent or wrong).
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    let declared = response.content_length().unwrap_or(0);
    if declared > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A JSON error's position and class, never its text: serde's messages quote the offending
/// value, which may be customer text.
pub(crate) fn json_error(what: &str, error: &serde_json::Error) -> LlmError {
    LlmError::InvalidResponse(format!(
        "{what}: {:?} error at line {} column {}",
        error.classify(),
        error.line(),
        error.column()
    ))
}

/// Parses a plain completion into the response, the model the server named, and its usage.
pub(crate) fn parse_completion(
    bytes: &[u8],
    request_model: &str,
) -> Result<(ChatResponse, Option<String>, Option<Usage>), LlmError> {
    let completion: wire::ChatCompletion =
        serde_json::from_slice(bytes).map_err(|e| json_error("chat completion", &e))?;
    let choices = completion.choices.unwrap_or_default();
    let choice = choices
        .iter()
        .find(|c| c.index.unwrap_or(0) == 0)
        .or_else(|| choices.first())
        .ok_or_else(|| LlmError::InvalidResponse("the completion has no choices".into()))?;
    let content = choice
        .message
        .as_ref()
        .and_then(|m| m.content.clone())
        .unwrap_or_default();
    let usage = completion.usage.map(wire::WireUsage::to_usage);
    let response_model = completion.model.filter(|m| !m.is_empty());
    let response = ChatResponse {
        id: completion.id.unwrap_or_default(),
        model: response_model
            .clone()
            .unwrap_or_else(|| request_model.to_owned()),
        content,
        finish_reason: choice.finish_reason.clone(),
        usage: usage.unwrap_or_default(),
        cost: None,
        span_context: None,
    };
    Ok((response, response_model, usage))
}

/// Parses embeddings, putting vectors back in input order by their `index`; exactly one vector
/// per input or the answer is refused.
pub(crate) fn parse_embeddings(
    bytes: &[u8],
    expected: usize,
    request_model: &str,
) -> Result<(Embeddings, Option<String>), LlmError> {
    let response: wire::EmbeddingsResponse =
        serde_json::from_slice(bytes).map_err(|e| json_error("embeddings", &e))?;
    if response.data.len() != expected {
        return Err(LlmError::InvalidResponse(format!(
            "expected {expected} embeddings, got {}",
            response.data.len()
        )));
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
    for item in response.data {
        match slots.get_mut(item.index) {
            Some(slot @ None) => *slot = Some(item.embedding),
            _ => {
                return Err(LlmError::InvalidResponse(format!(
                    "embedding index {} is out of range or repeated",
                    item.index
                )));
            }
        }
    }
    let vectors: Vec<Vec<f32>> = slots.into_iter().flatten().collect();
    let response_model = response.model.filter(|m| !m.is_empty());
    Ok((
        Embeddings {
            vectors,
            model: response_model
                .clone()
                .unwrap_or_else(|| request_model.to_owned()),
            input_tokens: response.usage.and_then(|u| u.prompt_tokens),
            cost: None,
        },
        response_model,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_parse_leniently_and_refuse_garbage() {
        let (response, model, usage) = parse_completion(
            br#"{"id":"c1","model":"m-2024","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
            "m",
        )
        .expect("parses");
        assert_eq!(response.content, "hi");
        assert_eq!(model.as_deref(), Some("m-2024"));
        assert_eq!(usage.map(|u| u.total_tokens), Some(4));

        let (response, model, usage) =
            parse_completion(br#"{"choices":[{"message":{"content":null}}]}"#, "m")
                .expect("minimal parses");
        assert_eq!((response.model.as_str(), model, usage), ("m", None, None));

        for garbage in [
            &b"not json"[..],
            b"{\"choices\":[]}",
            b"[]",
            b"{\"choices\":\"secret text\"}",
            b"{\"choices\":null}",
        ] {
            let error = parse_completion(garbage, "m").expect_err("refused");
            assert!(matches!(error, LlmError::InvalidResponse(_)));
            assert!(!error.to_string().contains("secret text"), "{error}");
        }
    }

    #[test]
    fn embeddings_are_reordered_by_index_and_checked() {
        let body = br#"{"data":[{"index":1,"embedding":[1.0]},{"index":0,"embedding":[0.0]}],"model":"e","usage":{"prompt_tokens":5}}"#;
        let (embeddings, _) = parse_embeddings(body, 2, "e").expect("parses");
        assert_eq!(embeddings.vectors, vec![vec![0.0], vec![1.0]]);
        assert_eq!(embeddings.input_tokens, Some(5));
        for (body, n) in [
            (&br#"{"data":[{"index":0,"embedding":[0.0]}]}"#[..], 2),
            (
                br#"{"data":[{"index":0,"embedding":[0.0]},{"index":0,"embedding":[1.0]}]}"#,
                2,
            ),
            (br#"{"data":[{"index":5,"embedding":[0.0]}]}"#, 1),
        ] {
            assert!(matches!(
                parse_embeddings(body, n, "e"),
                Err(LlmError::InvalidResponse(_))
            ));
        }
    }
}
