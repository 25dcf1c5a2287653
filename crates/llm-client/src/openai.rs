//! The OpenAI-compatible HTTP implementation: `POST /chat/completions` (plain and SSE-streamed)
//! and `POST /embeddings`, with retries, bounded reads and GenAI telemetry.
//!
//! Each logical call is one GenAI CLIENT span ([`crate::instrument::Operation`]); each HTTP
//! attempt under it is an HTTP CLIENT span made by [`telemetry::TracedClient`], which also keeps
//! baggage and tracestate from leaving for a third-party API. The API key lives only in a
//! sensitive header value: no span, log, error or `Debug` output can show it.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt as _;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use telemetry::{PropagationPolicy, RequestOptions, TracedClient};
use tracing::Instrument as _;

use crate::instrument::{Instruments, Operation, Target};
use crate::retry::{backoff, parse_retry_after, retryable_status};
use crate::sse::SseParser;
use crate::wire;
use crate::{
    ChatRequest, ChatResponse, ChatStream, EmbeddingClient, Embeddings, LlmClient, LlmConfig,
    LlmError, StreamEvent, Usage,
};

/// URL template of chat completions, relative to the base URL (names the HTTP spans).
const CHAT_PATH: &str = "/chat/completions";
/// URL template of embeddings.
const EMBEDDINGS_PATH: &str = "/embeddings";
/// Largest chat completion body we read; far above any real answer, small enough to be safe.
const MAX_CHAT_BODY: usize = 8 * 1024 * 1024;
/// Largest embeddings body: a batch of large vectors as JSON text legitimately runs to tens of
/// megabytes (256 inputs × 3072 floats ≈ 16 MB).
const MAX_EMBEDDINGS_BODY: usize = 32 * 1024 * 1024;
/// Longest SSE line or event: one chunk is a few hundred bytes.
const MAX_SSE_LINE: usize = 1024 * 1024;
/// Most answer text a stream may accumulate, as for a plain completion.
const MAX_STREAM_CONTENT: usize = MAX_CHAT_BODY;
/// Connecting should never take long even when answering does.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why [`OpenAiClient::new`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `base_url` is not an absolute http(s) URL.
    #[error("the LLM base URL is invalid: {0}")]
    InvalidBaseUrl(String),
    /// The key holds characters an HTTP header cannot carry (the key itself is not shown).
    #[error("the LLM API key contains characters not allowed in an HTTP header")]
    InvalidApiKey,
    /// The HTTP client could not be built (TLS setup).
    #[error("building the HTTP client failed: {0}")]
    Http(#[source] reqwest::Error),
}

/// A client for any OpenAI-compatible server (OpenAI, Ollama, vLLM, the ShopMax mock).
pub struct OpenAiClient {
    config: LlmConfig,
    http: TracedClient,
    /// `Bearer <key>`, marked sensitive so reqwest never prints it either.
    authorization: Option<HeaderValue>,
    chat_url: reqwest::Url,
    embeddings_url: reqwest::Url,
    target: Arc<Target>,
}

impl fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("base_url", &self.config.base_url)
            .field("chat_model", &self.config.chat_model)
            .field("embedding_model", &self.config.embedding_model)
            .field("provider", &self.config.provider_name)
            .field("api_key", &self.config.api_key.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// What one attempt came to.
enum Outcome<T> {
    /// Success; stop.
    Done(T),
    /// A transient failure: retry if any retries are left, else fail with `error`.
    Retry {
        error: LlmError,
        retry_after: Option<Duration>,
    },
    /// A failure no retry will fix.
    Fail(LlmError),
}

/// The response body of a stream, as network reads.
type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A stream whose first bytes have arrived: the rest of the body, the first read and when.
type StartedStream = (ByteStream, Bytes, Instant);

impl OpenAiClient {
    /// Builds the client. Call it after `telemetry::init` so its metrics reach the real meter
    /// provider.
    pub fn new(config: LlmConfig, policy: PropagationPolicy) -> Result<Self, BuildError> {
        let base = config.base_url.trim_end_matches('/');
        let parse = |path: &str| {
            let url = reqwest::Url::parse(&format!("{base}{path}"))
                .map_err(|e| BuildError::InvalidBaseUrl(e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(BuildError::InvalidBaseUrl(
                    "must be an absolute http(s) URL".into(),
                ));
            }
            Ok(url)
        };
        let chat_url = parse(CHAT_PATH)?;
        let embeddings_url = parse(EMBEDDINGS_PATH)?;

        let authorization = match &config.api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                    .map_err(|_| BuildError::InvalidApiKey)?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };

        // No whole-request timeout on the client: a streamed answer may rightly take longer
        // than one attempt's budget. Plain requests get `config.timeout` per request; streams
        // get it as the idle limit between reads (read_timeout) and until their first byte.
        let inner = reqwest::Client::builder()
            .connect_timeout(config.timeout.min(MAX_CONNECT_TIMEOUT))
            .read_timeout(config.timeout)
            .build()
            .map_err(BuildError::Http)?;

        let target = Arc::new(Target {
            provider: config.provider_name.clone(),
            server_address: chat_url.host_str().unwrap_or_default().to_owned(),
            server_port: chat_url.port_or_known_default(),
            capture_content: config.capture_content,
            instruments: Instruments::new(),
        });
        Ok(Self {
            http: TracedClient::new(inner, policy),
            authorization,
            chat_url,
            embeddings_url,
            target,
            config,
        })
    }

    /// Sends one attempt, as an HTTP CLIENT span child of the current (GenAI) span.
    async fn send(
        &self,
        url: &reqwest::Url,
        template: &'static str,
        body: &Bytes,
        resend: u32,
        stream: bool,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut builder = self
            .http
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(
                ACCEPT,
                if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            )
            .body(body.clone());
        if let Some(authorization) = &self.authorization {
            builder = builder.header(AUTHORIZATION, authorization.clone());
        }
        if !stream {
            builder = builder.timeout(self.config.timeout);
        }
        builder
            .send_with(RequestOptions {
                url_template: Some(template),
                resend_count: resend,
            })
            .await
    }

    /// Runs `attempt(resend)` until it succeeds, fails for good, or the retries run out;
    /// between attempts waits the server's `Retry-After` or a jittered exponential backoff,
    /// both capped at `max_backoff`, and notes each retry on the operation's span.
    async fn with_retries<T, F, Fut>(&self, op: &Operation, mut attempt: F) -> Result<T, LlmError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Outcome<T>>,
    {
        let mut resend = 0u32;
        loop {
            match attempt(resend).await {
                Outcome::Done(value) => return Ok(value),
                Outcome::Fail(error) => return Err(error),
                Outcome::Retry { error, retry_after } => {
                    if resend >= self.config.max_retries {
                        return Err(error);
                    }
                    resend += 1;
                    let (wait, honoured) = match retry_after {
                        Some(after) => (after.min(self.config.max_backoff), true),
                        None => (
                            backoff(self.config.initial_backoff, self.config.max_backoff, resend),
                            false,
                        ),
                    };
                    op.record_retry(resend, &error.error_type(), wait, honoured);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn chat_body(&self, request: &ChatRequest, stream: bool) -> Result<Bytes, LlmError> {
        let body = wire::ChatBody {
            model: &self.config.chat_model,
            messages: &request.messages,
            temperature: request.temperature,
            max_tokens: request.max_tokens,
            stream,
            stream_options: stream.then_some(wire::StreamOptions {
                include_usage: true,
            }),
        };
        serde_json::to_vec(&body)
            .map(Bytes::from)
            .map_err(|e| LlmError::InvalidResponse(format!("encoding the request: {e}")))
    }

    async fn chat_attempt(
        &self,
        body: &Bytes,
        resend: u32,
    ) -> Outcome<(ChatResponse, Option<String>, Option<Usage>)> {
        let response = match self
            .send(&self.chat_url, CHAT_PATH, body, resend, false)
            .await
        {
            Ok(response) => response,
            Err(error) => return transport_outcome(&error),
        };
        if let Some(outcome) = status_outcome(&response) {
            return outcome;
        }
        match read_capped(response, MAX_CHAT_BODY).await {
            Ok(bytes) => match parse_completion(&bytes, &self.config.chat_model) {
                Ok(parsed) => Outcome::Done(parsed),
                Err(error) => Outcome::Fail(error),
            },
            Err(ReadError::Transport(error)) => transport_outcome(&error),
            Err(ReadError::TooLarge) => Outcome::Fail(too_large(MAX_CHAT_BODY)),
        }
    }

    async fn stream_attempt(&self, body: &Bytes, resend: u32) -> Outcome<StartedStream> {
        let response = match self
            .send(&self.chat_url, CHAT_PATH, body, resend, true)
            .await
        {
            Ok(response) => response,
            Err(error) => return transport_outcome(&error),
        };
        if let Some(outcome) = status_outcome(&response) {
            return outcome;
        }
        let mut bytes: ByteStream = Box::pin(response.bytes_stream());
        // The attempt lasts until the first byte: up to then nothing reached the caller, so a
        // failure can still be retried; after it, a retry would repeat text already shown.
        let first = tokio::time::timeout(self.config.timeout, async {
            loop {
                match bytes.next().await {
                    Some(Ok(chunk)) if chunk.is_empty() => continue,
                    other => return other,
                }
            }
        })
        .await;
        match first {
            Err(_elapsed) => Outcome::Retry {
                error: LlmError::Timeout,
                retry_after: None,
            },
            Ok(Some(Ok(chunk))) => Outcome::Done((bytes, chunk, Instant::now())),
            Ok(Some(Err(error))) => transport_outcome(&error),
            Ok(None) => Outcome::Fail(LlmError::InvalidResponse(
                "the stream ended before any event".into(),
            )),
        }
    }

    async fn embed_attempt(
        &self,
        body: &Bytes,
        expected: usize,
        resend: u32,
    ) -> Outcome<(Embeddings, Option<String>)> {
        let response = match self
            .send(&self.embeddings_url, EMBEDDINGS_PATH, body, resend, false)
            .await
        {
            Ok(response) => response,
            Err(error) => return transport_outcome(&error),
        };
        if let Some(outcome) = status_outcome(&response) {
            return outcome;
        }
        match read_capped(response, MAX_EMBEDDINGS_BODY).await {
            Ok(bytes) => match parse_embeddings(&bytes, expected, &self.config.embedding_model) {
                Ok(parsed) => Outcome::Done(parsed),
                Err(error) => Outcome::Fail(error),
            },
            Err(ReadError::Transport(error)) => transport_outcome(&error),
            Err(ReadError::TooLarge) => Outcome::Fail(too_large(MAX_EMBEDDINGS_BODY)),
        }
    }
}

#[async_trait::async_trait]
impl LlmClient for OpenAiClient {
    fn model(&self) -> &str {
        &self.config.chat_model
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let mut op = Operation::chat(&self.target, &self.config.chat_model, &request);
        let span = op.span().clone();
        let result = async {
            let body = self.chat_body(&request, false)?;
            self.with_retries(&op, |resend| self.chat_attempt(&body, resend))
                .await
        }
        .instrument(span)
        .await;
        match result {
            Ok((response, response_model, usage)) => {
                op.succeed_chat(&response, response_model.as_deref(), usage);
                Ok(response)
            }
            Err(error) => {
                op.fail(&error);
                Err(error)
            }
        }
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        let op = Operation::chat(&self.target, &self.config.chat_model, &request);
        let span = op.span().clone();
        let started = async {
            let body = self.chat_body(&request, true)?;
            self.with_retries(&op, |resend| self.stream_attempt(&body, resend))
                .await
        }
        .instrument(span)
        .await;
        match started {
            Ok((body, first, at)) => Ok(Box::pin(EventStream {
                op,
                body: Some(body),
                first: Some((first, at)),
                parser: SseParser::new(MAX_SSE_LINE),
                pending: VecDeque::new(),
                acc: Accumulated::default(),
                request_model: self.config.chat_model.clone(),
                ended: false,
            })),
            Err(error) => {
                let mut op = op;
                op.fail(&error);
                Err(error)
            }
        }
    }
}

#[async_trait::async_trait]
impl EmbeddingClient for OpenAiClient {
    fn model(&self) -> &str {
        &self.config.embedding_model
    }

    async fn embed(&self, inputs: &[String]) -> Result<Embeddings, LlmError> {
        if inputs.is_empty() {
            // OpenAI rejects an empty batch with a 400; nothing to embed needs no round trip.
            return Ok(Embeddings {
                vectors: Vec::new(),
                model: self.config.embedding_model.clone(),
                input_tokens: Some(0),
            });
        }
        let mut op = Operation::embeddings(&self.target, &self.config.embedding_model);
        let span = op.span().clone();
        let result = async {
            let body = serde_json::to_vec(&wire::EmbeddingsBody {
                model: &self.config.embedding_model,
                input: inputs,
            })
            .map(Bytes::from)
            .map_err(|e| LlmError::InvalidResponse(format!("encoding the request: {e}")))?;
            self.with_retries(&op, |resend| {
                self.embed_attempt(&body, inputs.len(), resend)
            })
            .await
        }
        .instrument(span)
        .await;
        match result {
            Ok((embeddings, response_model)) => {
                op.succeed_embeddings(
                    response_model.as_deref(),
                    embeddings.input_tokens,
                    embeddings.vectors.first().map(Vec::len),
                );
                Ok(embeddings)
            }
            Err(error) => {
                op.fail(&error);
                Err(error)
            }
        }
    }
}

/// `None` for a success status; otherwise whether to retry, honouring `Retry-After`.
fn status_outcome<T>(response: &reqwest::Response) -> Option<Outcome<T>> {
    let status = response.status().as_u16();
    if response.status().is_success() {
        return None;
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    Some(if status == 429 {
        Outcome::Retry {
            error: LlmError::RateLimited,
            retry_after,
        }
    } else if retryable_status(status) {
        Outcome::Retry {
            error: LlmError::Status { status },
            retry_after,
        }
    } else {
        Outcome::Fail(LlmError::Status { status })
    })
}

/// A transport failure: retried, as timeout or unreachable. Only a request we could not even
/// build is final, and ours always build.
fn transport_outcome<T>(error: &reqwest::Error) -> Outcome<T> {
    if error.is_builder() {
        return Outcome::Fail(LlmError::Unreachable);
    }
    Outcome::Retry {
        error: transport_error(error),
        retry_after: None,
    }
}

fn transport_error(error: &reqwest::Error) -> LlmError {
    if error.is_timeout() {
        LlmError::Timeout
    } else {
        LlmError::Unreachable
    }
}

fn too_large(limit: usize) -> LlmError {
    LlmError::InvalidResponse(format!("the response body exceeds {limit} bytes"))
}

/// Why a body could not be read.
enum ReadError {
    Transport(reqwest::Error),
    TooLarge,
}

/// Reads the whole body, refusing more than `limit` bytes (checked before and while reading,
/// since `Content-Length` may be absent or wrong).
async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, ReadError> {
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
fn json_error(what: &str, error: &serde_json::Error) -> LlmError {
    LlmError::InvalidResponse(format!(
        "{what}: {:?} error at line {} column {}",
        error.classify(),
        error.line(),
        error.column()
    ))
}

/// Parses a plain completion into the response, the model the server named, and its usage.
fn parse_completion(
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
    };
    Ok((response, response_model, usage))
}

/// Parses embeddings, putting vectors back in input order by their `index`; exactly one vector
/// per input or the answer is refused.
fn parse_embeddings(
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
        },
        response_model,
    ))
}

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
struct EventStream {
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
            self.op.record_first_chunk(at);
            if self.acc.id.is_none() {
                self.acc.id = chunk.id.filter(|id| !id.is_empty());
            }
            if self.acc.model.is_none()
                && let Some(model) = chunk.model.filter(|m| !m.is_empty())
            {
                self.op.record_response_model(&model);
                self.acc.model = Some(model);
            }
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
        };
        self.op
            .succeed_chat(&response, acc.model.as_deref(), acc.usage);
        self.pending.push_back(Ok(StreamEvent::Done(response)));
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
                Poll::Ready(Some(Err(error))) => this.fail(transport_error(&error)),
                Poll::Ready(None) => {
                    this.body = None;
                    this.finish_body();
                }
            }
        }
    }
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

    #[test]
    fn debug_never_shows_the_key() {
        let config = LlmConfig::from_lookup(&|k| match k {
            "LLM_API_KEY" => Some("sk-very-secret".into()),
            _ => None,
        })
        .expect("config");
        let client = OpenAiClient::new(
            config,
            PropagationPolicy {
                internal_hosts: Vec::new(),
                trace_headers_to_external: false,
            },
        )
        .expect("client");
        let debug = format!("{client:?}");
        assert!(!debug.contains("sk-very-secret"), "{debug}");
        assert!(debug.contains("***"), "{debug}");
    }

    #[test]
    fn bad_base_urls_and_keys_are_refused_without_echoing_the_key() {
        let mut config = LlmConfig::from_lookup(&|_| None).expect("config");
        let policy = PropagationPolicy {
            internal_hosts: Vec::new(),
            trace_headers_to_external: false,
        };
        config.base_url = "not a url".into();
        assert!(matches!(
            OpenAiClient::new(config.clone(), policy.clone()),
            Err(BuildError::InvalidBaseUrl(_))
        ));
        config.base_url = "http://localhost:1/v1".into();
        config.api_key = Some(crate::ApiKey::new("sk-line\nbreak"));
        let error = OpenAiClient::new(config, policy).expect_err("refused");
        assert!(matches!(error, BuildError::InvalidApiKey));
        assert!(!error.to_string().contains("sk-line"));
    }
}
