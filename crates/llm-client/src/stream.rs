//! The stream handed to the caller of `chat_stream`: SSE decoded as bytes arrive
//! ([`crate::sse`]), chunks parsed into deltas and a final response, and the operation's span
//! and metrics ended with it.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;

use crate::instrument::Operation;
use crate::parse::{MAX_CHAT_BODY, json_error};
use crate::sse::SseParser;
use crate::wire;
use crate::{ChatResponse, LlmError, StreamEvent, Usage};

/// Longest SSE line or event: one chunk is a few hundred bytes.
const MAX_SSE_LINE: usize = 1024 * 1024;
/// Most answer text a stream may accumulate, as for a plain completion.
const MAX_STREAM_CONTENT: usize = MAX_CHAT_BODY;

/// The response body of a stream, as network reads.
pub(crate) type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A stream whose first bytes have arrived: the rest of the body, the first read and when.
pub(crate) type StartedStream = (ByteStream, Bytes, Instant);

/// What a stream has told us so far.
#[derive(Debug, Default)]
struct Accumulated {
    id: Option<String>,
    model: Option<String>,
    content: String,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

/// The stream handed to the caller: parses SSE as bytes arrive, yields deltas, then `Done`,
/// and ends the operation (span and metrics) when the stream ends, fails, or is dropped.
pub(crate) struct EventStream {
    op: Operation,
    body: Option<ByteStream>,
    /// The read that ended the attempt, not yet parsed, with its arrival time.
    first: Option<(Bytes, Instant)>,
    parser: SseParser,
    pending: VecDeque<Result<StreamEvent, LlmError>>,
    acc: Accumulated,
    request_model: String,
    ended: bool,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("pending", &self.pending.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl EventStream {
    /// The stream of an operation whose attempt got its first bytes; it ends `op`.
    pub(crate) fn new(op: Operation, started: StartedStream, request_model: String) -> Self {
        let (body, first, at) = started;
        Self {
            op,
            body: Some(body),
            first: Some((first, at)),
            parser: SseParser::new(MAX_SSE_LINE),
            pending: VecDeque::new(),
            acc: Accumulated::default(),
            request_model,
            ended: false,
        }
    }

    fn process(&mut self, bytes: &[u8], at: Instant) {
        let mut events = Vec::new();
        if let Err(error) = self.parser.feed(bytes, &mut events) {
            self.fail(LlmError::InvalidResponse(error.to_string()));
            return;
        }
        self.handle_events(events, at);
    }

    fn finish_body(&mut self) {
        let mut events = Vec::new();
        if let Err(error) = self.parser.finish(&mut events) {
            self.fail(LlmError::InvalidResponse(error.to_string()));
            return;
        }
        self.handle_events(events, Instant::now());
        if self.ended {
            return;
        }
        // No `[DONE]`: some servers just close the connection after the last chunk. A finish
        // reason says the answer is complete; without one it was cut off.
        if self.acc.finish_reason.is_some() {
            self.complete();
        } else {
            self.fail(LlmError::InvalidResponse(
                "the stream ended before [DONE]".into(),
            ));
        }
    }

    fn handle_events(&mut self, events: Vec<String>, at: Instant) {
        for data in events {
            if self.ended {
                return;
            }
            if data.trim() == "[DONE]" {
                self.complete();
                return;
            }
            let chunk: wire::ChatChunk = match serde_json::from_str(&data) {
                Ok(chunk) => chunk,
                Err(error) => {
                    self.fail(json_error("stream chunk", &error));
                    return;
                }
            };
            if chunk.error.is_some() {
                self.fail(LlmError::InvalidResponse(
                    "the server sent an error event in the stream".into(),
                ));
                return;
            }
            if self.acc.id.is_none() {
                self.acc.id = chunk.id.filter(|id| !id.is_empty());
            }
            if self.acc.model.is_none()
                && let Some(model) = chunk.model.filter(|m| !m.is_empty())
            {
                self.op.record_response_model(&model);
                self.acc.model = Some(model);
            }
            // After the model: the chunk metrics carry the response model like the others.
            self.op.record_chunk(at);
            if let Some(usage) = chunk.usage {
                self.acc.usage = Some(usage.to_usage());
            }
            for choice in chunk.choices.unwrap_or_default() {
                if choice.index.unwrap_or(0) != 0 {
                    continue;
                }
                if let Some(reason) = choice.finish_reason {
                    self.acc.finish_reason = Some(reason);
                }
                let Some(text) = choice.delta.and_then(|d| d.content) else {
                    continue;
                };
                if text.is_empty() {
                    continue;
                }
                if self.acc.content.len() + text.len() > MAX_STREAM_CONTENT {
                    self.fail(LlmError::InvalidResponse(format!(
                        "the streamed answer exceeds {MAX_STREAM_CONTENT} bytes"
                    )));
                    return;
                }
                self.acc.content.push_str(&text);
                self.pending.push_back(Ok(StreamEvent::Delta(text)));
            }
        }
    }

    fn complete(&mut self) {
        let acc = std::mem::take(&mut self.acc);
        let response = ChatResponse {
            id: acc.id.unwrap_or_default(),
            model: acc
                .model
                .clone()
                .unwrap_or_else(|| self.request_model.clone()),
            content: acc.content,
            finish_reason: acc.finish_reason,
            usage: acc.usage.unwrap_or_default(),
            cost: None,
            span_context: None,
        };
        let mut response = response;
        self.op
            .succeed_chat(&mut response, acc.model.as_deref(), acc.usage);
        self.pending
            .push_back(Ok(StreamEvent::Done(Box::new(response))));
        self.end();
    }

    fn fail(&mut self, error: LlmError) {
        self.op.fail(&error);
        self.pending.push_back(Err(error));
        self.end();
    }

    fn end(&mut self) {
        self.ended = true;
        // Release the connection now, not when the caller drops the stream.
        self.body = None;
        self.first = None;
    }
}

impl Stream for EventStream {
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.pending.pop_front() {
                return Poll::Ready(Some(item));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            if let Some((bytes, at)) = this.first.take() {
                this.process(&bytes, at);
                continue;
            }
            let Some(body) = this.body.as_mut() else {
                this.finish_body();
                continue;
            };
            match body.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(bytes))) => this.process(&bytes, Instant::now()),
                Poll::Ready(Some(Err(error))) => this.fail(LlmError::from_transport(&error)),
                Poll::Ready(None) => {
                    this.body = None;
                    this.finish_body();
                }
            }
        }
    }
}
