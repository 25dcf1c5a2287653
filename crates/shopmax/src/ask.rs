//! `shopmax ask`: one question to the chatbot, as JSON or as a stream (deltas handed to the
//! caller as they arrive, with the time to the first one).

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::{Value, json};

/// What to ask.
#[derive(Debug, Clone)]
pub struct Question {
    /// The chatbot's base URL, e.g. `http://127.0.0.1:8080`.
    pub chatbot: String,
    /// The question.
    pub text: String,
    /// `customer_id` in the body.
    pub customer: Option<String>,
    /// `session_id` in the body.
    pub session: Option<String>,
    /// Ask for a streamed answer.
    pub stream: bool,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The answer text (empty on an error).
    pub text: String,
    /// The trace, from the body or the `traceresponse` header.
    pub trace_id: Option<String>,
    /// Time to the first answer text (streamed answers).
    pub first_text: Option<Duration>,
    /// Time to the end of the reply.
    pub took: Duration,
    /// The JSON reply; for a stream, its `meta` and `done` (or `error`) events merged.
    pub reply: Value,
}

impl Answer {
    /// The error of an error reply or stream event: code and message.
    pub fn error(&self) -> Option<(String, String)> {
        let e = self.reply.get("error")?;
        Some((
            e.get("code")
                .and_then(Value::as_str)
                .unwrap_or("error")
                .to_owned(),
            e.get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ))
    }
}

/// Why nothing came back.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// The chatbot is not listening.
    #[error("cannot reach the chatbot at {url}: {detail} (is `shopmax up` running?)")]
    Unreachable {
        /// Where we asked.
        url: String,
        /// What failed.
        detail: String,
    },
    /// It answered something unreadable.
    #[error("the chatbot's reply could not be read: {0}")]
    Invalid(String),
}

/// Asks; `on_text` gets each piece of a streamed answer as it arrives.
pub async fn ask(
    client: &reqwest::Client,
    question: &Question,
    mut on_text: impl FnMut(&str),
) -> Result<Answer, AskError> {
    let url = format!("{}/v1/chat", question.chatbot.trim_end_matches('/'));
    let mut body = json!({ "question": question.text, "stream": question.stream });
    if let Some(c) = &question.customer {
        body["customer_id"] = json!(c);
    }
    if let Some(s) = &question.session {
        body["session_id"] = json!(s);
    }
    let started = Instant::now();
    let response =
        client
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| AskError::Unreachable {
                url: url.clone(),
                detail: crate::fetch::root_cause(&e),
            })?;
    let status = response.status().as_u16();
    let header_trace = response
        .headers()
        .get("traceresponse")
        .and_then(|v| v.to_str().ok())
        .and_then(crate::fetch::normalise_trace_id);
    let is_stream = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let mut answer = Answer {
        status,
        text: String::new(),
        trace_id: header_trace,
        first_text: None,
        took: Duration::ZERO,
        reply: Value::Null,
    };
    if is_stream {
        let mut reply = serde_json::Map::new();
        let mut bytes = response.bytes_stream();
        let mut buffer = String::new();
        let mut event = String::from("message");
        while let Some(chunk) = bytes.next().await {
            let chunk = chunk.map_err(|e| AskError::Invalid(crate::fetch::root_cause(&e)))?;
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find('\n') {
                let line: String = buffer.drain(..=end).collect();
                let line = line.trim_end_matches(['\r', '\n']);
                if let Some(name) = line.strip_prefix("event:") {
                    event = name.trim().to_owned();
                } else if let Some(data) = line.strip_prefix("data:") {
                    let data: Value = serde_json::from_str(data.trim())
                        .map_err(|e| AskError::Invalid(format!("event {event}: {e}")))?;
                    match event.as_str() {
                        "delta" => {
                            if let Some(text) = data.get("text").and_then(Value::as_str) {
                                if answer.first_text.is_none() {
                                    answer.first_text = Some(started.elapsed());
                                }
                                answer.text.push_str(text);
                                on_text(text);
                            }
                        }
                        "error" => {
                            reply.insert("error".into(), data);
                        }
                        _ => {
                            if let Value::Object(fields) = data {
                                reply.extend(fields);
                            }
                        }
                    }
                } else if line.is_empty() {
                    event = "message".into();
                }
            }
        }
        answer.reply = Value::Object(reply);
    } else {
        let text = response
            .text()
            .await
            .map_err(|e| AskError::Invalid(crate::fetch::root_cause(&e)))?;
        answer.reply = serde_json::from_str(&text)
            .map_err(|_| AskError::Invalid(format!("HTTP {status}, not JSON: {text:.200}")))?;
        answer.text = answer
            .reply
            .get("answer")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
    }
    answer.took = started.elapsed();
    let body_trace = answer
        .reply
        .get("trace_id")
        .or_else(|| answer.reply.pointer("/error/trace_id"))
        .and_then(Value::as_str)
        .and_then(crate::fetch::normalise_trace_id);
    answer.trace_id = body_trace.or(answer.trace_id);
    Ok(answer)
}
