//! `POST /v1/embeddings` in OpenAI's wire format.

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::embedder::{self, DEFAULT_DIMENSIONS, MAX_DIMENSIONS};
use crate::error::{OpenAiError, OpenAiJson};

/// Most inputs in one request, as OpenAI allows.
pub(crate) const MAX_INPUTS: usize = 2048;

/// The fields the mock uses; others (`user`, ...) are ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct EmbeddingRequest {
    model: String,
    /// A string, an array of strings, a token array or an array of token arrays.
    input: Value,
    #[serde(default)]
    dimensions: Option<u64>,
    #[serde(default)]
    encoding_format: Option<String>,
}

fn invalid(param: &str, message: impl Into<String>) -> OpenAiError {
    OpenAiError::invalid("invalid_value", Some(param), message)
}

/// One input, as text, with its token count.
#[derive(Debug)]
struct Input {
    text: String,
    tokens: usize,
}

fn token_ids(value: &Value) -> Option<Vec<u32>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
        .collect()
}

fn inputs(state: &AppState, input: Value) -> Result<Vec<Input>, OpenAiError> {
    let tokenizers = state.tokenizers();
    let from_text = |text: String| -> Result<Input, OpenAiError> {
        if text.is_empty() {
            return Err(invalid(
                "input",
                "'$.input' is invalid: inputs must not be empty strings.",
            ));
        }
        Ok(Input {
            tokens: tokenizers.count_embedding(&text),
            text,
        })
    };
    let from_tokens = |ids: Vec<u32>| -> Result<Input, OpenAiError> {
        if ids.is_empty() {
            return Err(invalid(
                "input",
                "'$.input' is invalid: token arrays must not be empty.",
            ));
        }
        let text = tokenizers
            .decode_embedding(&ids)
            .ok_or_else(|| invalid("input", "'$.input' is invalid: unknown token ids."))?;
        Ok(Input {
            text,
            tokens: ids.len(),
        })
    };
    let parsed = match input {
        Value::String(text) => vec![from_text(text)?],
        Value::Array(items) if items.is_empty() => {
            return Err(invalid(
                "input",
                "'$.input' is invalid: expected at least one input.",
            ));
        }
        Value::Array(items) if items.len() > MAX_INPUTS => {
            return Err(invalid(
                "input",
                format!("'$.input' is invalid: at most {MAX_INPUTS} inputs per request."),
            ));
        }
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .into_iter()
            .map(|v| from_text(v.as_str().unwrap_or_default().to_owned()))
            .collect::<Result<_, _>>()?,
        Value::Array(items) if items.iter().all(Value::is_number) => {
            let ids = token_ids(&Value::Array(items)).ok_or_else(|| {
                invalid(
                    "input",
                    "'$.input' is invalid: token ids must be non-negative integers.",
                )
            })?;
            vec![from_tokens(ids)?]
        }
        Value::Array(items) if items.iter().all(Value::is_array) => items
            .iter()
            .map(|v| {
                token_ids(v)
                    .ok_or_else(|| {
                        invalid(
                            "input",
                            "'$.input' is invalid: token ids must be non-negative integers.",
                        )
                    })
                    .and_then(from_tokens)
            })
            .collect::<Result<_, _>>()?,
        Value::Null => {
            return Err(OpenAiError::invalid(
                "missing_required_parameter",
                Some("input"),
                "Missing required parameter: 'input'.",
            ));
        }
        _ => {
            return Err(invalid(
                "input",
                "'$.input' is invalid: expected a string, an array of strings, or token arrays.",
            ));
        }
    };
    Ok(parsed)
}

/// The handler.
pub(crate) async fn create(
    State(state): State<AppState>,
    OpenAiJson(request): OpenAiJson<EmbeddingRequest>,
) -> Result<Json<Value>, OpenAiError> {
    if request.model.trim().is_empty() {
        return Err(invalid("model", "You must provide a model parameter."));
    }
    let dimensions = match request.dimensions {
        None => DEFAULT_DIMENSIONS,
        Some(d) => usize::try_from(d)
            .ok()
            .filter(|d| (1..=MAX_DIMENSIONS).contains(d))
            .ok_or_else(|| {
                invalid(
                    "dimensions",
                    format!("'dimensions' must be between 1 and {MAX_DIMENSIONS}."),
                )
            })?,
    };
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(invalid(
                "encoding_format",
                format!("Invalid value: '{other}'. Supported values are: 'float' and 'base64'."),
            ));
        }
    };
    let inputs = inputs(&state, request.input)?;
    if crate::chat::apply_fault(&state, &request.model).await? == crate::chat::Effect::Stall {
        // Never answers; the caller's timeout is what the fault is for.
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(state.config().embed_delay).await;

    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = embedder::embed(&input.text, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let prompt_tokens: usize = inputs.iter().map(|i| i.tokens).sum();
    tracing::info!(
        model = %request.model,
        inputs = inputs.len(),
        dimensions,
        prompt_tokens,
        "mock_llm.embeddings.completed"
    );
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": { "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens },
    })))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use serde_json::json;

    use crate::embedder::{DEFAULT_DIMENSIONS, cosine, embed};
    use crate::test_support::*;
    use crate::{Config, app};

    async fn embeddings(body: impl Into<axum::body::Body>) -> Raw {
        post_json(app(state(Config::for_tests())), "/v1/embeddings", body).await
    }

    fn vector(value: &serde_json::Value) -> Vec<f32> {
        value
            .as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number") as f32)
            .collect()
    }

    #[tokio::test]
    async fn embeddings_returns_one_vector_per_input_in_openai_format() {
        let body =
            json!({ "model": "text-embedding-3-small", "input": ["hello world", "OnePlus 11 5G"] });
        let raw = embeddings(body.to_string()).await;
        assert_eq!(
            raw.status.as_u16(),
            200,
            "{}",
            String::from_utf8_lossy(&raw.body)
        );
        let json = raw.json();
        assert_eq!(json["object"], "list");
        assert_eq!(json["model"], "text-embedding-3-small");
        let data = json["data"].as_array().expect("data");
        assert_eq!(data.len(), 2);
        for (i, item) in data.iter().enumerate() {
            assert_eq!(item["object"], "embedding");
            assert_eq!(item["index"], i);
            assert_eq!(
                item["embedding"].as_array().map(Vec::len),
                Some(DEFAULT_DIMENSIONS)
            );
        }
        let expected = embed("OnePlus 11 5G", DEFAULT_DIMENSIONS);
        assert!(cosine(&vector(&data[1]["embedding"]), &expected) > 0.9999);
        // cl100k_base: "hello world" = 2 tokens, "OnePlus 11 5G" = 6 tokens.
        let tokens = tokenizers().count_embedding("OnePlus 11 5G");
        assert_eq!(json["usage"]["prompt_tokens"], 2 + tokens);
        assert_eq!(json["usage"]["total_tokens"], 2 + tokens);
    }

    #[tokio::test]
    async fn embeddings_accepts_a_single_string_and_token_arrays() {
        let raw = embeddings(json!({ "model": "m", "input": "hello world" }).to_string()).await;
        let text = vector(&raw.json()["data"][0]["embedding"]);
        // [15339, 1917] is "hello world" in cl100k_base.
        let raw = embeddings(json!({ "model": "m", "input": [15339, 1917] }).to_string()).await;
        let json = raw.json();
        assert_eq!(vector(&json["data"][0]["embedding"]), text);
        assert_eq!(json["usage"]["prompt_tokens"], 2);
        let raw = embeddings(json!({ "model": "m", "input": [[15339], [1917]] }).to_string()).await;
        assert_eq!(raw.json()["data"].as_array().map(Vec::len), Some(2));
    }

    #[tokio::test]
    async fn embeddings_honours_dimensions_and_base64() {
        let raw =
            embeddings(json!({ "model": "m", "input": "tv", "dimensions": 64 }).to_string()).await;
        let floats = vector(&raw.json()["data"][0]["embedding"]);
        assert_eq!(floats.len(), 64);
        let raw = embeddings(
            json!({ "model": "m", "input": "tv", "dimensions": 64, "encoding_format": "base64" })
                .to_string(),
        )
        .await;
        let encoded = raw.json()["data"][0]["embedding"]
            .as_str()
            .expect("base64 string")
            .to_owned();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64");
        let decoded: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(decoded, floats);
    }

    #[rstest::rstest]
    #[case::malformed("{", "invalid_json")]
    #[case::missing_input(r#"{"model":"m"}"#, "missing_required_parameter")]
    #[case::missing_model(r#"{"input":"x"}"#, "missing_required_parameter")]
    #[case::empty_string(r#"{"model":"m","input":""}"#, "invalid_value")]
    #[case::empty_array(r#"{"model":"m","input":[]}"#, "invalid_value")]
    #[case::number(r#"{"model":"m","input":5}"#, "invalid_value")]
    #[case::mixed(r#"{"model":"m","input":["a", 1]}"#, "invalid_value")]
    #[case::negative_token(r#"{"model":"m","input":[-1]}"#, "invalid_value")]
    #[case::unknown_token(r#"{"model":"m","input":[4294967295]}"#, "invalid_value")]
    #[case::dimensions_zero(r#"{"model":"m","input":"x","dimensions":0}"#, "invalid_value")]
    #[case::dimensions_huge(r#"{"model":"m","input":"x","dimensions":100000}"#, "invalid_value")]
    #[case::bad_format(
        r#"{"model":"m","input":"x","encoding_format":"hex"}"#,
        "invalid_value"
    )]
    #[tokio::test]
    async fn embeddings_returns_400_for_bad_input(#[case] body: &'static str, #[case] code: &str) {
        let raw = embeddings(body).await;
        let error = assert_openai_error(&raw, 400);
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["code"], code, "{error}");
    }

    #[tokio::test]
    async fn embeddings_returns_400_for_too_many_inputs() {
        let inputs = vec!["x"; super::MAX_INPUTS + 1];
        let raw = embeddings(json!({ "model": "m", "input": inputs }).to_string()).await;
        assert_openai_error(&raw, 400);
    }
}
