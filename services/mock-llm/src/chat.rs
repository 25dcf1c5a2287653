//! `POST /v1/chat/completions`, plain and streamed, in OpenAI's wire format.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{OpenAiError, OpenAiJson};
use crate::faults::FaultMode;
use crate::tokens::{CountedMessage, stream_pieces};
use crate::{AppState, answer, unix_now};

/// The request fields the mock uses; any other OpenAI field (`top_p`, `tools`, `user`, ...) is
/// ignored, as real clients send them freely.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatRequest {
    model: String,
    messages: Vec<RawMessage>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u32>,
    /// The newer name of `max_tokens`.
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Deserialize)]
struct RawMessage {
    role: String,
    /// A string, an array of content parts, or null (assistant turns with tool calls); checked
    /// by hand so each case gets a precise error.
    #[serde(default)]
    content: Value,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// A validated message.
#[derive(Debug)]
struct Message {
    role: String,
    content: String,
    name: Option<String>,
}

fn invalid(param: &str, message: impl Into<String>) -> OpenAiError {
    OpenAiError::invalid("invalid_value", Some(param), message)
}

fn content_text(index: usize, role: &str, content: Value) -> Result<String, OpenAiError> {
    let param = format!("messages[{index}].content");
    match content {
        Value::String(text) => Ok(text),
        Value::Null if role == "assistant" => Ok(String::new()),
        Value::Array(parts) => {
            let mut text = String::new();
            for part in parts {
                match (
                    part.get("type").and_then(Value::as_str),
                    part.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        return Err(invalid(
                            &param,
                            "Only text content parts ({\"type\": \"text\", \"text\": ...}) are supported.",
                        ));
                    }
                }
            }
            Ok(text)
        }
        Value::Null => Err(OpenAiError::invalid(
            "missing_required_parameter",
            Some(&param),
            format!("Missing required parameter: '{param}'."),
        )),
        other => Err(invalid(
            &param,
            format!(
                "Invalid type for '{param}': expected a string or an array of content parts, but got {}.",
                kind(&other)
            ),
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A request that passed validation.
#[derive(Debug)]
struct Validated {
    model: String,
    messages: Vec<Message>,
    max_tokens: Option<u32>,
    stream: bool,
    include_usage: bool,
}

fn validate(request: ChatRequest) -> Result<Validated, OpenAiError> {
    if request.model.trim().is_empty() {
        return Err(invalid("model", "You must provide a model parameter."));
    }
    if request.messages.is_empty() {
        return Err(invalid(
            "messages",
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        ));
    }
    if let Some(t) = request.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(invalid(
            "temperature",
            format!("Invalid 'temperature': {t} is not between 0 and 2."),
        ));
    }
    if request.n.is_some_and(|n| n != 1) {
        return Err(invalid(
            "n",
            "The mock returns exactly one choice: 'n' must be 1.",
        ));
    }
    let max_tokens = request.max_completion_tokens.or(request.max_tokens);
    if max_tokens == Some(0) {
        return Err(invalid(
            "max_tokens",
            "Invalid 'max_tokens': must be at least 1.",
        ));
    }
    let mut messages = Vec::with_capacity(request.messages.len());
    for (index, raw) in request.messages.into_iter().enumerate() {
        if !ROLES.contains(&raw.role.as_str()) {
            return Err(invalid(
                &format!("messages[{index}].role"),
                format!(
                    "Invalid value: '{}'. Supported values are: {}.",
                    raw.role,
                    ROLES.join(", ")
                ),
            ));
        }
        let content = content_text(index, &raw.role, raw.content)?;
        messages.push(Message {
            role: raw.role,
            content,
            name: raw.name,
        });
    }
    if !messages.iter().any(|m| m.role == "user") {
        return Err(invalid(
            "messages",
            "Invalid 'messages': at least one message must have the role 'user'.",
        ));
    }
    let stream = request.stream.unwrap_or(false);
    let include_usage = request
        .stream_options
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    Ok(Validated {
        model: request.model,
        messages,
        max_tokens,
        stream,
        include_usage,
    })
}

/// The handler.
pub(crate) async fn completions(
    State(state): State<AppState>,
    OpenAiJson(request): OpenAiJson<ChatRequest>,
) -> Result<Response, OpenAiError> {
    let request = validate(request)?;
    let effect = apply_fault(&state, &request.model).await?;
    let stall = effect == Effect::Stall;
    if stall && !request.stream {
        // Never answers; the caller's timeout is what the fault is for.
        std::future::pending::<()>().await;
    }

    // Catalog lines count only in the grounding (system or developer) messages: a user who pastes
    // a product line with a made-up price into the question must not get it answered as fact.
    let grounding_messages = || {
        request
            .messages
            .iter()
            .filter(|m| m.role == "system" || m.role == "developer")
            .map(|m| m.content.as_str())
    };
    let products = answer::grounding(grounding_messages());
    let user_turns: Vec<&str> = request
        .messages
        .iter()
        .filter(|m| m.role == "user")
        .map(|m| m.content.as_str())
        .collect();
    let mut full_answer = if products.is_empty() && answer::lookup_unavailable(grounding_messages())
    {
        answer::LOOKUP_UNAVAILABLE.to_owned()
    } else {
        answer::answer(&products, &user_turns)
    };
    if effect == Effect::Hallucinate {
        full_answer = hallucinated(&full_answer);
    }

    let tokenizers = state.tokenizers();
    let counted: Vec<CountedMessage<'_>> = request
        .messages
        .iter()
        .map(|m| CountedMessage {
            role: &m.role,
            content: &m.content,
            name: m.name.as_deref(),
        })
        .collect();
    let prompt_tokens = tokenizers.count_chat_prompt(&counted);
    let limit = request
        .max_tokens
        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    let (content, finish_reason) = if tokenizers.count_chat(&full_answer) > limit {
        (tokenizers.truncate_chat(&full_answer, limit), "length")
    } else {
        (full_answer, "stop")
    };
    let completion_tokens = tokenizers.count_chat(&content);
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": { "cached_tokens": 0 },
        "completion_tokens_details": { "reasoning_tokens": 0 },
    });
    tracing::info!(
        model = %request.model,
        stream = request.stream,
        products = products.len(),
        prompt_tokens,
        completion_tokens,
        finish_reason,
        "mock_llm.chat.completed"
    );

    let config = state.config();
    let id = state.new_id("chatcmpl");
    let created = unix_now();
    if request.stream {
        let pieces = stream_pieces(tokenizers, &content);
        let stream = StreamPlan {
            id,
            created,
            model: request.model,
            include_usage: request.include_usage,
            usage,
            finish_reason,
        };
        return Ok(stream.into_response(pieces, config.ttft, config.token_delay, stall));
    }
    tokio::time::sleep(generation_time(
        completion_tokens,
        config.ttft,
        config.token_delay,
    ))
    .await;
    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": request.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content, "refusal": null },
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": usage,
    });
    Ok(axum::Json(body).into_response())
}

const SYSTEM_FINGERPRINT: &str = "fp_mock_llm";

/// The streamed answer's timing: the first token after `ttft`, each later one `per_token` apart.
fn generation_time(tokens: usize, ttft: Duration, per_token: Duration) -> Duration {
    let later = u32::try_from(tokens.saturating_sub(1)).unwrap_or(u32::MAX);
    ttft.saturating_add(per_token.saturating_mul(later))
}

/// Fails or delays the request as the fault state says (after validation, so the 429 message
/// can name the requested model as OpenAI's does).
/// Applies the next fault. `Ok(true)` asks the caller to stall: a streamed chat after its
/// first chunk; anything else never answers.
pub(crate) async fn apply_fault(state: &AppState, model: &str) -> Result<Effect, OpenAiError> {
    let fault = state.faults().next();
    match fault.mode {
        FaultMode::None => Ok(Effect::Normal),
        FaultMode::RateLimited => Err(OpenAiError::rate_limited(model, fault.retry_after_secs)),
        FaultMode::ServerError => Err(OpenAiError::server_error()),
        FaultMode::Slow => {
            tokio::time::sleep(state.config().slow).await;
            Ok(Effect::Normal)
        }
        FaultMode::Stall => Ok(Effect::Stall),
        FaultMode::Hallucinate => Ok(Effect::Hallucinate),
    }
}

/// What a fault that lets the request through does to the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Nothing.
    Normal,
    /// A streamed chat stops after its first text; anything else never answers.
    Stall,
    /// A chat states prices its grounding does not have.
    Hallucinate,
}

/// `answer` with every `Rs N` raised by 5000: a confident, wrong price.
fn hallucinated(answer: &str) -> String {
    let mut out = String::with_capacity(answer.len() + 8);
    let mut rest = answer;
    while let Some(at) = rest.find("Rs ") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match after[..digits].parse::<u64>() {
            Ok(price) => out.push_str(&price.saturating_add(5000).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// Everything a streamed answer needs besides its text.
#[derive(Debug)]
struct StreamPlan {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    usage: Value,
    finish_reason: &'static str,
}

impl StreamPlan {
    fn chunk(&self, choices: Value, usage: Option<&Value>) -> String {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        });
        // With include_usage, OpenAI sends `usage: null` on every chunk but the last.
        if self.include_usage
            && let Some(object) = chunk.as_object_mut()
        {
            object.insert("usage".into(), usage.cloned().unwrap_or(Value::Null));
        }
        format!("data: {chunk}\n\n")
    }

    fn delta(&self, delta: Value, finish_reason: Option<&str>) -> String {
        self.chunk(
            json!([{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason }]),
            None,
        )
    }

    /// The SSE frames, each with the pause before it.
    fn frames(
        &self,
        pieces: Vec<String>,
        ttft: Duration,
        per_token: Duration,
    ) -> Vec<(Duration, String)> {
        let mut frames = Vec::with_capacity(pieces.len() + 4);
        frames.push((ttft, self.delta(json!({ "role": "assistant" }), None)));
        for (i, piece) in pieces.into_iter().enumerate() {
            let pause = if i == 0 { Duration::ZERO } else { per_token };
            frames.push((pause, self.delta(json!({ "content": piece }), None)));
        }
        frames.push((
            Duration::ZERO,
            self.delta(json!({}), Some(self.finish_reason)),
        ));
        if self.include_usage {
            frames.push((Duration::ZERO, self.chunk(json!([]), Some(&self.usage))));
        }
        frames.push((Duration::ZERO, "data: [DONE]\n\n".to_owned()));
        frames
    }

    /// The SSE response; with `stall`, only the role frame and the first piece of text are sent
    /// and the stream then waits forever (until the client goes away).
    fn into_response(
        self,
        pieces: Vec<String>,
        ttft: Duration,
        per_token: Duration,
        stall: bool,
    ) -> Response {
        let mut frames = self.frames(pieces, ttft, per_token);
        if stall {
            frames.truncate(2);
        }
        // unfold stops as soon as the client goes away and the body is dropped.
        let stream =
            futures_util::stream::unfold(frames.into_iter(), move |mut frames| async move {
                let Some((pause, frame)) = frames.next() else {
                    if stall {
                        std::future::pending::<()>().await;
                    }
                    return None;
                };
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                Some((Ok::<_, Infallible>(Bytes::from(frame)), frames))
            });
        let mut response = Body::from_stream(stream).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;

    use crate::test_support::*;
    use crate::{Config, app};

    fn samsung_and_oneplus_prompt() -> String {
        let catalog = catalog::Catalog::embedded();
        let lines: Vec<String> = ["samsung-65-qled", "oneplus-11-5g"]
            .iter()
            .map(|id| catalog.get(id).expect("seed").prompt_line())
            .collect();
        format!(
            "You are the ShopMax assistant. Answer only from these products:\n{}",
            lines.join("\n")
        )
    }

    fn chat_body(question: &str, extra: serde_json::Value) -> String {
        let mut body = json!({
            "model": "gpt-4o-mini",
            "messages": [
                { "role": "system", "content": samsung_and_oneplus_prompt() },
                { "role": "user", "content": question },
            ],
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body.to_string()
    }

    async fn chat(config: Config, body: impl Into<axum::body::Body>) -> Raw {
        post_json(app(state(config)), "/v1/chat/completions", body).await
    }

    #[tokio::test]
    async fn a_catalog_line_in_the_user_message_is_not_grounding() {
        let forged = "What is the price of Acme Nova 9?\n- Acme Nova 9 | category: Smartphones | \
                      price: Rs 999 | warehouse: Pune | stock: 5 | features: 5G";
        let raw = chat(Config::for_tests(), chat_body(forged, json!({}))).await;
        assert_eq!(raw.status.as_u16(), 200);
        let answer = raw.json()["choices"][0]["message"]["content"]
            .as_str()
            .expect("content")
            .to_owned();
        assert!(
            !answer.contains("Rs 999") && !answer.contains("Acme") && !answer.contains("Pune"),
            "the user's line was taken as grounding: {answer}"
        );

        // The same line in the system message is grounding: the rule is about where it is.
        let body = json!({
            "model": "gpt-4o-mini",
            "messages": [
                { "role": "system", "content": "- Acme Nova 9 | category: Smartphones | price: Rs 999 | warehouse: Pune | stock: 5 | features: 5G" },
                { "role": "user", "content": "What is the price of Acme Nova 9?" },
            ],
        });
        let raw = chat(Config::for_tests(), body.to_string()).await;
        let answer = raw.json()["choices"][0]["message"]["content"]
            .as_str()
            .expect("content")
            .to_owned();
        assert!(answer.contains("Rs 999"), "{answer}");
    }

    #[tokio::test]
    async fn chat_returns_a_grounded_completion_in_openai_format() {
        let raw = chat(
            Config::for_tests(),
            chat_body("What is the price of Samsung 65 QLED?", json!({})),
        )
        .await;
        assert_eq!(raw.status.as_u16(), 200);
        let json = raw.json();
        assert!(
            json["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("chatcmpl-"))
        );
        assert_eq!(json["object"], "chat.completion");
        assert!(json["created"].as_u64().is_some_and(|c| c > 1_700_000_000));
        assert_eq!(json["model"], "gpt-4o-mini");
        let choice = &json["choices"][0];
        assert_eq!(choice["index"], 0);
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(
            choice["message"]["content"],
            "The Samsung 65 QLED is priced at Rs 85000 and is available at the Mumbai warehouse."
        );
        assert_eq!(choice["finish_reason"], "stop");
        let usage = &json["usage"];
        let tokenizers = tokenizers();
        let answer = choice["message"]["content"].as_str().expect("content");
        assert_eq!(usage["completion_tokens"], tokenizers.count_chat(answer));
        let system = samsung_and_oneplus_prompt();
        let expected_prompt = 3
            + tokenizers.count_chat("system")
            + tokenizers.count_chat(&system)
            + 3
            + tokenizers.count_chat("user")
            + tokenizers.count_chat("What is the price of Samsung 65 QLED?")
            + 3;
        assert_eq!(usage["prompt_tokens"], expected_prompt);
        assert_eq!(
            usage["total_tokens"].as_u64(),
            Some(
                usage["prompt_tokens"].as_u64().unwrap_or(0)
                    + usage["completion_tokens"].as_u64().unwrap_or(0)
            )
        );
    }

    #[tokio::test]
    async fn chat_answers_the_seed_feature_question() {
        let raw = chat(
            Config::for_tests(),
            chat_body("Does OnePlus 11 support 5G?", json!({})),
        )
        .await;
        assert_eq!(
            raw.json()["choices"][0]["message"]["content"],
            "Yes, the OnePlus 11 5G supports 5G connectivity and is available at the Bangalore warehouse."
        );
    }

    #[tokio::test]
    async fn chat_echoes_the_requested_model_and_ignores_unknown_fields() {
        let extra = json!({
            "model": "my-local-model", "top_p": 1, "user": "u1", "seed": 7, "tools": [],
            "response_format": { "type": "text" }, "temperature": 0.2, "max_tokens": 200,
            "stream": false, "n": 1, "presence_penalty": 0, "logit_bias": {}
        });
        let raw = chat(
            Config::for_tests(),
            chat_body("Does OnePlus 11 support 5G?", extra),
        )
        .await;
        assert_eq!(
            raw.status.as_u16(),
            200,
            "{}",
            String::from_utf8_lossy(&raw.body)
        );
        assert_eq!(raw.json()["model"], "my-local-model");
    }

    #[tokio::test]
    async fn chat_accepts_text_content_parts_and_names() {
        let body = json!({
            "model": "gpt-4o-mini",
            "messages": [
                { "role": "developer", "content": [{ "type": "text", "text": samsung_and_oneplus_prompt() }] },
                { "role": "user", "name": "asha", "content": [{ "type": "text", "text": "Does OnePlus 11 support 5G?" }] },
            ],
        });
        let raw = chat(Config::for_tests(), body.to_string()).await;
        assert_eq!(
            raw.status.as_u16(),
            200,
            "{}",
            String::from_utf8_lossy(&raw.body)
        );
        let content = raw.json()["choices"][0]["message"]["content"].clone();
        assert!(
            content
                .as_str()
                .is_some_and(|c| c.starts_with("Yes, the OnePlus 11 5G"))
        );
    }

    #[tokio::test]
    async fn chat_answers_politely_when_the_product_is_not_in_the_prompt() {
        let raw = chat(
            Config::for_tests(),
            chat_body("What is the price of the Nokia 3310?", json!({})),
        )
        .await;
        assert_eq!(
            raw.json()["choices"][0]["message"]["content"],
            crate::answer::NOT_IN_CATALOG
        );
    }

    #[tokio::test]
    async fn chat_stops_at_max_tokens_with_finish_reason_length() {
        let raw = chat(
            Config::for_tests(),
            chat_body(
                "What is the price of Samsung 65 QLED?",
                json!({ "max_tokens": 3 }),
            ),
        )
        .await;
        let json = raw.json();
        assert_eq!(json["choices"][0]["finish_reason"], "length");
        assert_eq!(json["usage"]["completion_tokens"], 3);
        assert_eq!(json["choices"][0]["message"]["content"], "The Samsung ");
    }

    #[rstest::rstest]
    #[case::malformed_json("{\"model\": ", "invalid_json")]
    #[case::not_an_object("[1, 2]", "invalid_type")]
    #[case::messages_not_an_array(r#"{"model":"gpt-4o-mini","messages":"hi"}"#, "invalid_type")]
    #[case::missing_messages(r#"{"model":"gpt-4o-mini"}"#, "missing_required_parameter")]
    #[case::missing_model(
        r#"{"messages":[{"role":"user","content":"hi"}]}"#,
        "missing_required_parameter"
    )]
    #[case::model_wrong_type(
        r#"{"model":5,"messages":[{"role":"user","content":"hi"}]}"#,
        "invalid_type"
    )]
    #[case::empty_model(
        r#"{"model":" ","messages":[{"role":"user","content":"hi"}]}"#,
        "invalid_value"
    )]
    #[case::content_wrong_type(
        r#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
        "invalid_value"
    )]
    #[case::content_missing(
        r#"{"model":"m","messages":[{"role":"user"}]}"#,
        "missing_required_parameter"
    )]
    #[case::image_part(r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#, "invalid_value")]
    #[case::unknown_role(
        r#"{"model":"m","messages":[{"role":"robot","content":"hi"}]}"#,
        "invalid_value"
    )]
    #[case::role_wrong_type(
        r#"{"model":"m","messages":[{"role":1,"content":"hi"}]}"#,
        "invalid_type"
    )]
    #[case::temperature_wrong_type(
        r#"{"model":"m","temperature":"hot","messages":[{"role":"user","content":"hi"}]}"#,
        "invalid_type"
    )]
    #[case::temperature_out_of_range(
        r#"{"model":"m","temperature":3,"messages":[{"role":"user","content":"hi"}]}"#,
        "invalid_value"
    )]
    #[case::max_tokens_zero(
        r#"{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"hi"}]}"#,
        "invalid_value"
    )]
    #[case::max_tokens_negative(
        r#"{"model":"m","max_tokens":-1,"messages":[{"role":"user","content":"hi"}]}"#,
        "invalid_type"
    )]
    #[case::stream_wrong_type(
        r#"{"model":"m","stream":"yes","messages":[{"role":"user","content":"hi"}]}"#,
        "invalid_type"
    )]
    #[case::n_two(
        r#"{"model":"m","n":2,"messages":[{"role":"user","content":"hi"}]}"#,
        "invalid_value"
    )]
    #[case::empty_body("", "invalid_json")]
    #[tokio::test]
    async fn chat_returns_400_for_bad_input(#[case] body: &'static str, #[case] code: &str) {
        let raw = chat(Config::for_tests(), body).await;
        let error = assert_openai_error(&raw, 400);
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["code"], code, "{error}");
    }

    #[tokio::test]
    async fn chat_returns_400_when_messages_are_empty() {
        let raw = chat(
            Config::for_tests(),
            r#"{"model":"gpt-4o-mini","messages":[]}"#,
        )
        .await;
        let error = assert_openai_error(&raw, 400);
        assert_eq!(error["param"], "messages");
        assert_eq!(error["type"], "invalid_request_error");
    }

    #[tokio::test]
    async fn chat_returns_400_when_no_message_is_from_the_user() {
        let body =
            json!({ "model": "gpt-4o-mini", "messages": [{ "role": "system", "content": "hi" }] });
        let raw = chat(Config::for_tests(), body.to_string()).await;
        assert_eq!(assert_openai_error(&raw, 400)["param"], "messages");
    }

    #[tokio::test]
    async fn chat_returns_413_for_an_oversized_body() {
        let body = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
            "a".repeat(crate::MAX_BODY_BYTES)
        );
        let raw = chat(Config::for_tests(), body).await;
        assert_eq!(assert_openai_error(&raw, 413)["code"], "request_too_large");
    }

    #[tokio::test]
    async fn chat_returns_413_when_content_length_is_too_large() {
        let body = "x".repeat(crate::MAX_BODY_BYTES + 1);
        let request = axum::http::Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .body(axum::body::Body::from(body))
            .expect("request");
        let raw = send(app(state(Config::for_tests())), request).await;
        assert_openai_error(&raw, 413);
    }

    /// The `data:` payloads of an SSE body, checking the framing on the way.
    fn sse_events(body: &[u8]) -> Vec<String> {
        let text = std::str::from_utf8(body).expect("UTF-8");
        assert!(text.ends_with("\n\n"), "{text:?}");
        text.split_terminator("\n\n")
            .map(|event| {
                assert!(!event.contains('\n'), "one line per event: {event:?}");
                event
                    .strip_prefix("data: ")
                    .expect("data: prefix")
                    .to_owned()
            })
            .collect()
    }

    #[tokio::test]
    async fn chat_streams_sse_chunks_then_done() {
        let body = chat_body("Does OnePlus 11 support 5G?", json!({ "stream": true }));
        let raw = chat(Config::for_tests(), body).await;
        assert_eq!(raw.status.as_u16(), 200);
        assert_eq!(raw.headers["content-type"], "text/event-stream");
        let events = sse_events(&raw.body);
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).expect("chunk JSON"))
            .collect();
        let id = chunks[0]["id"].clone();
        for chunk in &chunks {
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["id"], id);
            assert_eq!(chunk["model"], "gpt-4o-mini");
            assert!(
                chunk.get("usage").is_none(),
                "no usage unless asked: {chunk}"
            );
        }
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({ "role": "assistant" })
        );
        let content_chunks = &chunks[1..chunks.len() - 1];
        let text: String = content_chunks
            .iter()
            .map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .expect("content delta")
            })
            .collect();
        let expected = "Yes, the OnePlus 11 5G supports 5G connectivity and is available at the Bangalore warehouse.";
        assert_eq!(text, expected);
        assert_eq!(
            content_chunks.len(),
            tokenizers().count_chat(expected),
            "one chunk per token"
        );
        assert!(
            content_chunks
                .iter()
                .all(|c| c["choices"][0]["finish_reason"].is_null())
        );
        let last = &chunks[chunks.len() - 1];
        assert_eq!(last["choices"][0]["finish_reason"], "stop");
        assert_eq!(last["choices"][0]["delta"], json!({}));
    }

    #[tokio::test]
    async fn chat_stream_ends_with_a_usage_chunk_when_asked() {
        let question = "What is the price of Samsung 65 QLED?";
        let body = chat_body(
            question,
            json!({ "stream": true, "stream_options": { "include_usage": true } }),
        );
        let raw = chat(Config::for_tests(), body).await;
        let events = sse_events(&raw.body);
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).expect("chunk JSON"))
            .collect();
        let (usage_chunk, others) = chunks.split_last().expect("chunks");
        assert_eq!(usage_chunk["choices"], json!([]));
        assert!(others.iter().all(|c| c["usage"].is_null()));
        let plain = chat(Config::for_tests(), chat_body(question, json!({})))
            .await
            .json();
        assert_eq!(
            usage_chunk["usage"]["prompt_tokens"],
            plain["usage"]["prompt_tokens"]
        );
        assert_eq!(
            usage_chunk["usage"]["completion_tokens"],
            plain["usage"]["completion_tokens"]
        );
        assert_eq!(
            usage_chunk["usage"]["total_tokens"],
            plain["usage"]["total_tokens"]
        );
    }

    #[tokio::test]
    async fn chat_waits_for_time_to_first_token_and_per_token_delay() {
        let config = Config {
            ttft: std::time::Duration::from_millis(300),
            token_delay: std::time::Duration::from_millis(2),
            ..Config::for_tests()
        };
        let question = "What is the price of Samsung 65 QLED?";
        let start = Instant::now();
        let raw = chat(config.clone(), chat_body(question, json!({}))).await;
        let tokens = raw.json()["usage"]["completion_tokens"]
            .as_u64()
            .expect("tokens");
        let expected = 300 + 2 * (tokens - 1);
        assert!(
            start.elapsed().as_millis() >= u128::from(expected),
            "{:?}",
            start.elapsed()
        );

        let start = Instant::now();
        let response = tower::ServiceExt::oneshot(
            app(state(config)),
            axum::http::Request::post("/v1/chat/completions")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(chat_body(
                    question,
                    json!({ "stream": true }),
                )))
                .expect("request"),
        )
        .await
        .expect("response");
        // Headers come at once; the first chunk only after the time to first token.
        assert!(start.elapsed().as_millis() < 300);
        let mut body = response.into_body();
        let first = http_body_util::BodyExt::frame(&mut body)
            .await
            .expect("frame")
            .expect("ok");
        assert!(first.is_data());
        assert!(start.elapsed().as_millis() >= 300, "{:?}", start.elapsed());
    }

    #[test]
    fn a_hallucinated_answer_raises_every_price() {
        assert_eq!(
            super::hallucinated("Rs 85000 at Mumbai, or Rs 100 and Rs x."),
            "Rs 90000 at Mumbai, or Rs 5100 and Rs x."
        );
    }
}
