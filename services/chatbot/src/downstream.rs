//! Calls to the fraud and recommendation services, behind small traits so handler tests can
//! swap in fakes. The HTTP implementations go through [`telemetry::TracedClient`], which makes
//! the CLIENT span and carries traceparent, tracestate and baggage to these internal hosts. The
//! bodies are the [`contract`] types the services themselves serve.

use std::fmt;
use std::time::Duration;

use contract::fraud::{self, Assessment, ScoreRequest};
use contract::recommendation::{self, RecommendRequest, RecommendResponse};
use serde::Serialize;
use telemetry::{RequestOptions, TracedClient};

/// The services the chatbot calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Fraud screening (Hyderabad).
    Fraud,
    /// Product recommendation (Mumbai).
    Recommendation,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fraud => "fraud",
            Self::Recommendation => "recommendation",
        })
    }
}

/// Why a downstream call gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownstreamError {
    /// No answer within the deadline.
    #[error("{service} did not answer in time")]
    Timeout {
        /// Which service.
        service: Service,
    },
    /// Unreachable, or answered with an error status.
    #[error("{service} is unavailable ({detail})")]
    Unavailable {
        /// Which service.
        service: Service,
        /// Status code or transport failure kind.
        detail: String,
    },
    /// Refused our request with a 4xx: a contract mismatch between the services.
    #[error("{service} rejected the request ({status})")]
    Rejected {
        /// Which service.
        service: Service,
        /// The 4xx status.
        status: u16,
    },
    /// Answered 2xx with a body we could not read.
    #[error("{service} answered malformed JSON")]
    Invalid {
        /// Which service.
        service: Service,
    },
}

/// Scores a request for fraud.
#[async_trait::async_trait]
pub trait FraudScorer: Send + Sync + fmt::Debug {
    /// Scores `request`.
    async fn score(&self, request: &ScoreRequest) -> Result<Assessment, DownstreamError>;
}

/// Finds products for a question.
#[async_trait::async_trait]
pub trait Recommender: Send + Sync + fmt::Debug {
    /// The `top_k` products best matching `query`.
    async fn recommend(
        &self,
        query: &str,
        top_k: usize,
    ) -> Result<RecommendResponse, DownstreamError>;
}

/// Largest fraud or recommendation reply read by default; a larger one is an invalid reply.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Reads `response` whole unless it is larger than `max` bytes (by its `Content-Length`, or
/// as it arrives): `None` then, without reading the rest.
async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > max {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// POSTs JSON to an internal service and reads JSON back (at most `max_body` bytes), with one
/// deadline for the whole call.
async fn post_json<Req: Serialize + Sync, Resp: serde::de::DeserializeOwned>(
    client: &TracedClient,
    service: Service,
    (url, template): (Option<&reqwest::Url>, &'static str),
    body: &Req,
    timeout: Duration,
    max_body: usize,
) -> Result<Resp, DownstreamError> {
    let options = RequestOptions {
        url_template: Some(template),
        resend_count: 0,
    };
    let Some(url) = url else {
        return Err(DownstreamError::Unavailable {
            service,
            detail: "invalid_url".into(),
        });
    };
    // The URL was parsed once, at start-up: a clone is a copy, where a string is parsed again on
    // every request.
    let request = client.post(url.clone()).json(body).timeout(timeout);
    let response = request.send_with(options).await.map_err(|e| {
        // A request that cannot be built never left: its URL (or body) is at fault.
        if e.is_builder() {
            DownstreamError::Unavailable {
                service,
                detail: "invalid_url".into(),
            }
        } else if e.is_timeout() {
            DownstreamError::Timeout { service }
        } else {
            DownstreamError::Unavailable {
                service,
                detail: telemetry::client_error_type(&e).into(),
            }
        }
    })?;
    let status = response.status();
    if status.is_client_error() {
        return Err(DownstreamError::Rejected {
            service,
            status: status.as_u16(),
        });
    }
    if !status.is_success() {
        return Err(DownstreamError::Unavailable {
            service,
            detail: status.as_u16().to_string(),
        });
    }
    match tokio::time::timeout(timeout, read_capped(response, max_body)).await {
        Err(_) => Err(DownstreamError::Timeout { service }),
        Ok(Err(e)) if e.is_timeout() => Err(DownstreamError::Timeout { service }),
        Ok(Err(_)) => Err(DownstreamError::Invalid { service }),
        Ok(Ok(None)) => {
            tracing::warn!(service = ?service, max_body, "chat.downstream.reply_too_large");
            Err(DownstreamError::Invalid { service })
        }
        Ok(Ok(Some(bytes))) => {
            serde_json::from_slice(&bytes).map_err(|_| DownstreamError::Invalid { service })
        }
    }
}

/// `{base_url}{path}`, parsed.
fn endpoint(base_url: &str, path: &str) -> Option<reqwest::Url> {
    reqwest::Url::parse(&format!("{}{path}", base_url.trim_end_matches('/'))).ok()
}

/// The fraud service over HTTP.
#[derive(Debug, Clone)]
pub struct HttpFraudScorer {
    client: TracedClient,
    /// `None` when the configured base URL does not parse: each call then fails as unavailable
    /// (`invalid_url`), as it would have on sending.
    url: Option<reqwest::Url>,
    timeout: Duration,
    max_body: usize,
}

impl HttpFraudScorer {
    /// Calls `{base_url}/v1/score`.
    pub fn new(client: TracedClient, base_url: &str, timeout: Duration) -> Self {
        Self {
            client,
            url: endpoint(base_url, fraud::PATH),
            timeout,
            max_body: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Reads replies of at most `bytes`.
    #[must_use]
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }
}

#[async_trait::async_trait]
impl FraudScorer for HttpFraudScorer {
    async fn score(&self, request: &ScoreRequest) -> Result<Assessment, DownstreamError> {
        post_json(
            &self.client,
            Service::Fraud,
            (self.url.as_ref(), fraud::PATH),
            request,
            self.timeout,
            self.max_body,
        )
        .await
    }
}

/// The recommendation service over HTTP.
#[derive(Debug, Clone)]
pub struct HttpRecommender {
    client: TracedClient,
    /// `None` when the configured base URL does not parse: each call then fails as unavailable
    /// (`invalid_url`), as it would have on sending.
    url: Option<reqwest::Url>,
    timeout: Duration,
    max_body: usize,
}

impl HttpRecommender {
    /// Calls `{base_url}/v1/recommend`.
    pub fn new(client: TracedClient, base_url: &str, timeout: Duration) -> Self {
        Self {
            client,
            url: endpoint(base_url, recommendation::PATH),
            timeout,
            max_body: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Reads replies of at most `bytes`.
    #[must_use]
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }
}

#[async_trait::async_trait]
impl Recommender for HttpRecommender {
    async fn recommend(
        &self,
        query: &str,
        top_k: usize,
    ) -> Result<RecommendResponse, DownstreamError> {
        let body = RecommendRequest {
            query: query.to_owned(),
            top_k: Some(top_k),
        };
        post_json(
            &self.client,
            Service::Recommendation,
            (self.url.as_ref(), recommendation::PATH),
            &body,
            self.timeout,
            self.max_body,
        )
        .await
    }
}
