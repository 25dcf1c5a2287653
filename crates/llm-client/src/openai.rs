//! The OpenAI-compatible HTTP implementation: `POST /chat/completions` (plain and SSE-streamed)
//! and `POST /embeddings`, with retries, bounded reads and GenAI telemetry.
//!
//! Each logical call is one GenAI CLIENT span ([`crate::instrument::Operation`]); each HTTP
//! attempt under it is an HTTP CLIENT span made by [`telemetry::TracedClient`], which also keeps
//! baggage and tracestate from leaving for a third-party API. The API key lives only in a
//! sensitive header value: no span, log, error or `Debug` output can show it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt as _;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use telemetry::{PropagationPolicy, RequestOptions, TracedClient};
use tracing::Instrument as _;

use crate::instrument::{Instruments, Operation, Target};
use crate::parse::{
    MAX_CHAT_BODY, MAX_EMBEDDINGS_BODY, ReadError, parse_completion, parse_embeddings, read_capped,
    too_large,
};
use crate::retry::{Backoff, parse_retry_after, retryable_status};
use crate::stream::{ByteStream, EventStream, StartedStream};
use crate::wire;
use crate::{
    ChatRequest, ChatResponse, ChatStream, EmbeddingClient, Embeddings, LlmClient, LlmConfig,
    LlmError,
};

/// URL template of chat completions, relative to the base URL (names the HTTP spans).
const CHAT_PATH: &str = "/chat/completions";
/// URL template of embeddings.
const EMBEDDINGS_PATH: &str = "/embeddings";
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
    backoff: Backoff,
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

/// What an attempt asks for: which endpoint, and whether the answer comes as a stream.
#[derive(Debug, Clone, Copy)]
enum Call {
    Chat,
    ChatStream,
    Embeddings,
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
            article_attributes: config.article_attributes,
            prices: config.prices.clone(),
            instruments: Instruments::new(),
        });
        if let Some(warning) = &config.prices_warning {
            tracing::warn!(warning = %warning, "llm.prices.invalid");
        }
        Ok(Self {
            http: TracedClient::new(inner, policy),
            authorization,
            chat_url,
            embeddings_url,
            backoff: Backoff {
                initial: config.initial_backoff,
                max: config.max_backoff,
            },
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
    async fn with_retries<T, F, Fut>(
        &self,
        op: &Operation,
        mut attempt: F,
    ) -> Result<(T, Instant), LlmError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Outcome<T>>,
    {
        let mut resend = 0u32;
        loop {
            // When the attempt that succeeds began: time to first chunk counts from here, so
            // failed attempts and backoff do not inflate it.
            let began = Instant::now();
            match attempt(resend).await {
                Outcome::Done(value) => return Ok((value, began)),
                Outcome::Fail(error) => return Err(error),
                Outcome::Retry { error, retry_after } => {
                    if resend >= self.config.max_retries {
                        return Err(error);
                    }
                    resend += 1;
                    let (wait, honoured) = match retry_after {
                        Some(after) => (self.backoff.cap(after), true),
                        None => (self.backoff.delay(resend), false),
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

    /// One attempt: sends the request, sorts a transport failure or an error status into retry
    /// or fail, and hands a success to `on_success`, which reads as much of the body as the
    /// attempt covers.
    async fn attempt<T, F, Fut>(
        &self,
        call: Call,
        body: &Bytes,
        resend: u32,
        on_success: F,
    ) -> Outcome<T>
    where
        F: FnOnce(reqwest::Response) -> Fut,
        Fut: Future<Output = Outcome<T>>,
    {
        let (url, template, stream) = match call {
            Call::Chat => (&self.chat_url, CHAT_PATH, false),
            Call::ChatStream => (&self.chat_url, CHAT_PATH, true),
            Call::Embeddings => (&self.embeddings_url, EMBEDDINGS_PATH, false),
        };
        let response = match self.send(url, template, body, resend, stream).await {
            Ok(response) => response,
            Err(error) => return transport_outcome(&error),
        };
        if let Some(outcome) = status_outcome(&response) {
            return outcome;
        }
        on_success(response).await
    }

    /// The success of a stream attempt: waits for the first bytes.
    async fn first_bytes(&self, response: reqwest::Response) -> Outcome<StartedStream> {
        let mut bytes: ByteStream = Box::pin(response.bytes_stream());
        // The attempt lasts until the first byte: up to then nothing reached the caller, so a
        // failure can still be retried; after it, a retry would repeat text already shown.
        let first = tokio::time::timeout(self.config.timeout, async {
            loop {
                match bytes.next().await {
                    Some(Ok(chunk)) if chunk.is_empty() => {}
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
}

#[async_trait::async_trait]
impl LlmClient for OpenAiClient {
    fn model(&self) -> &str {
        &self.config.chat_model
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let mut op = Operation::chat(&self.target, &self.config.chat_model, &request, false);
        let span = op.span().clone();
        let result = async {
            let body = self.chat_body(&request, false)?;
            self.with_retries(&op, |resend| {
                self.attempt(Call::Chat, &body, resend, |response| {
                    read_parsed(response, MAX_CHAT_BODY, |bytes| {
                        parse_completion(bytes, &self.config.chat_model)
                    })
                })
            })
            .await
        }
        .instrument(span)
        .await;
        match result {
            Ok(((mut response, response_model, usage), _)) => {
                op.succeed_chat(&mut response, response_model.as_deref(), usage);
                Ok(response)
            }
            Err(error) => {
                op.fail(&error);
                Err(error)
            }
        }
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        let op = Operation::chat(&self.target, &self.config.chat_model, &request, true);
        let span = op.span().clone();
        let started = async {
            let body = self.chat_body(&request, true)?;
            self.with_retries(&op, |resend| {
                self.attempt(Call::ChatStream, &body, resend, |response| {
                    self.first_bytes(response)
                })
            })
            .await
        }
        .instrument(span)
        .await;
        match started {
            Ok((started, began)) => {
                let mut op = op;
                op.attempt_began(began);
                Ok(Box::pin(EventStream::new(
                    op,
                    started,
                    self.config.chat_model.clone(),
                )))
            }
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
                cost: None,
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
                self.attempt(Call::Embeddings, &body, resend, |response| {
                    read_parsed(response, MAX_EMBEDDINGS_BODY, |bytes| {
                        parse_embeddings(bytes, inputs.len(), &self.config.embedding_model)
                    })
                })
            })
            .await
        }
        .instrument(span)
        .await;
        match result {
            Ok(((mut embeddings, response_model), _)) => {
                embeddings.cost = op.succeed_embeddings(
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
        error: LlmError::from_transport(error),
        retry_after: None,
    }
}

/// The success of a plain attempt: reads the whole body, at most `limit` bytes, and parses it.
/// A body cut off in transit is retried; one too large or malformed will not improve.
async fn read_parsed<T>(
    response: reqwest::Response,
    limit: usize,
    parse: impl FnOnce(&[u8]) -> Result<T, LlmError>,
) -> Outcome<T> {
    match read_capped(response, limit).await {
        Ok(bytes) => match parse(&bytes) {
            Ok(parsed) => Outcome::Done(parsed),
            Err(error) => Outcome::Fail(error),
        },
        Err(ReadError::Transport(error)) => transport_outcome(&error),
        Err(ReadError::TooLarge) => Outcome::Fail(too_large(limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use env_config::FromEnv as _;

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
