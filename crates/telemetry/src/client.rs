//! Outbound HTTP: a reqwest wrapper that makes the CLIENT span per the HTTP semantic conventions,
//! records `http.client.request.duration`, and injects the span's context under the outbound
//! policy: internal services get traceparent, tracestate and baggage; any other host (an external
//! LLM API) never gets baggage or tracestate, and gets traceparent only when configured to.
//!
//! Requests are built with [`TracedClient::post`] (or `get`, `request`) and sent with
//! [`TracedRequestBuilder::send`]: the wrapped reqwest client is never handed out, so no request
//! can leave without its span and its headers.
//!
//! The span ends when the response headers have arrived, not when the body has been read: the
//! HTTP conventions allow either ("HTTP client span duration") and ask that the choice be
//! documented. A caller that streams the body times it on a span of its own (the GenAI span).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue, Method};

use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;
use opentelemetry::trace::Status;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::PropagationPolicy;
use crate::propagation::{FilteringInjector, HeaderInjector};
use crate::server::method_name;

/// Query parameters whose values the semantic conventions require to be redacted in `url.full`.
const SENSITIVE_QUERY_PARAMS: &[&str] = &["AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"];

/// Optional details of one outbound request.
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestOptions<'a> {
    /// Low-cardinality URL template (e.g. `/v1/score`), which also names the span.
    pub url_template: Option<&'a str>,
    /// Which retry this is (0 for the first attempt): `http.request.resend_count`.
    pub resend_count: u32,
}

/// A reqwest client whose requests are traced and propagate context under the policy.
#[derive(Clone)]
pub struct TracedClient {
    inner: reqwest::Client,
    policy: Arc<PropagationPolicy>,
    duration: Histogram<f64>,
}

impl fmt::Debug for TracedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedClient")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl TracedClient {
    /// Wraps `inner`; build it after [`crate::init`] so metrics reach the real provider.
    pub fn new(inner: reqwest::Client, policy: PropagationPolicy) -> Self {
        Self {
            inner,
            policy: Arc::new(policy),
            duration: crate::metrics::client_duration(),
        }
    }

    /// A `GET` of `url`, sent through the CLIENT span.
    pub fn get(&self, url: impl reqwest::IntoUrl) -> TracedRequestBuilder {
        self.request(Method::GET, url)
    }

    /// A `POST` to `url`, sent through the CLIENT span.
    pub fn post(&self, url: impl reqwest::IntoUrl) -> TracedRequestBuilder {
        self.request(Method::POST, url)
    }

    /// A request of any method, sent through the CLIENT span. An invalid `url` surfaces as the
    /// error of [`TracedRequestBuilder::send`] (`is_builder()`), as with reqwest itself.
    pub fn request(&self, method: Method, url: impl reqwest::IntoUrl) -> TracedRequestBuilder {
        TracedRequestBuilder {
            builder: self.inner.request(method, url),
            client: self.clone(),
        }
    }

    /// Sends `request` in a CLIENT span, with the given details.
    async fn execute_with(
        &self,
        mut request: reqwest::Request,
        options: RequestOptions<'_>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let method = method_name(request.method());
        let url = request.url();
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default();
        let scheme = url.scheme().to_owned();
        let name = match options.url_template {
            Some(template) => format!("{} {template}", crate::server::span_name_method(method)),
            None => crate::server::span_name_method(method).to_owned(),
        };
        let span = tracing::info_span!(
            "HTTP client request",
            otel.name = %name,
            otel.kind = "client",
            http.request.method = method,
            http.request.method_original = Empty,
            url.full = %redact_url(url),
            url.template = Empty,
            server.address = %host,
            server.port = Empty,
            http.request.resend_count = Empty,
            http.response.status_code = Empty,
            error.type = Empty,
        );
        if method == "_OTHER" {
            span.record("http.request.method_original", request.method().as_str());
        }
        if let Some(template) = options.url_template {
            span.record("url.template", template);
        }
        if let Some(port) = port {
            span.record("server.port", i64::from(port));
        }
        if options.resend_count > 0 {
            span.record("http.request.resend_count", i64::from(options.resend_count));
        }

        let internal = self.policy.is_internal(&host, port);
        let headers = request.headers_mut();
        if !internal {
            // Whatever a caller set by hand, baggage and tracestate never leave for a third party.
            headers.remove("baggage");
            headers.remove("tracestate");
        }
        let allow: &[&str] = if internal {
            &["traceparent", "tracestate", "baggage"]
        } else if self.policy.trace_headers_to_external {
            &["traceparent"]
        } else {
            &[]
        };
        if !allow.is_empty() {
            let cx = span.context();
            let mut injector = FilteringInjector {
                inner: HeaderInjector(headers),
                allow,
            };
            opentelemetry::global::get_text_map_propagator(|p| {
                p.inject_context(&cx, &mut injector)
            });
        }

        let mut attrs = vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("server.address", host),
            KeyValue::new("url.scheme", scheme),
        ];
        if let Some(port) = port {
            attrs.push(KeyValue::new("server.port", i64::from(port)));
        }

        let start = Instant::now();
        let mut cancelled = CancelGuard(Some(span.clone()));
        let result = self.inner.execute(request).instrument(span.clone()).await;
        cancelled.0 = None;
        match &result {
            Ok(response) => {
                let status = response.status().as_u16();
                span.record("http.response.status_code", i64::from(status));
                attrs.push(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
                // Client spans are errors on any 4xx or 5xx: the call did not get what it asked.
                if status >= 400 {
                    span.record("error.type", status.to_string().as_str());
                    span.set_status(Status::error(""));
                    attrs.push(KeyValue::new("error.type", status.to_string()));
                }
            }
            Err(error) => {
                let kind = error_type(error);
                span.record("error.type", kind);
                span.set_status(Status::error(kind));
                attrs.push(KeyValue::new("error.type", kind));
            }
        }
        self.duration.record(start.elapsed().as_secs_f64(), &attrs);
        result
    }
}

/// Marks the CLIENT span `error.type=cancelled` when the request is dropped before it finished:
/// a caller's deadline that passed mid-call shows in the trace on the call that was running.
struct CancelGuard(Option<tracing::Span>);

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Some(span) = self.0.take() {
            span.record("error.type", "cancelled");
            span.set_status(Status::error("cancelled"));
        }
    }
}

/// A request being built by a [`TracedClient`]; the only way out is [`Self::send`], which makes the
/// CLIENT span and injects the context under the outbound policy.
pub struct TracedRequestBuilder {
    builder: reqwest::RequestBuilder,
    client: TracedClient,
}

impl fmt::Debug for TracedRequestBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The request may carry credentials (an Authorization header): show none of it.
        f.debug_struct("TracedRequestBuilder")
            .finish_non_exhaustive()
    }
}

impl TracedRequestBuilder {
    /// Adds a header; an invalid name or value surfaces as the error of [`Self::send`].
    pub fn header<K, V>(self, key: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.map(|b| b.header(key, value))
    }

    /// Sets `body` as JSON, with `content-type: application/json`.
    pub fn json<T: serde::Serialize + ?Sized>(self, body: &T) -> Self {
        self.map(|b| b.json(body))
    }

    /// Sets the request body.
    pub fn body(self, body: impl Into<reqwest::Body>) -> Self {
        self.map(|b| b.body(body))
    }

    /// Limits the whole request, from sending to the end of the response body.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.map(|b| b.timeout(timeout))
    }

    /// Sends the request in a CLIENT span.
    pub async fn send(self) -> Result<reqwest::Response, reqwest::Error> {
        self.send_with(RequestOptions::default()).await
    }

    /// Sends the request in a CLIENT span, with the given details. A request that could not be
    /// built (invalid URL, header or JSON body) fails here with an error whose `is_builder()` is
    /// true, before any span is made.
    pub async fn send_with(
        self,
        options: RequestOptions<'_>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let request = self.builder.build()?;
        self.client.execute_with(request, options).await
    }

    fn map(self, f: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder) -> Self {
        Self {
            builder: f(self.builder),
            client: self.client,
        }
    }
}

/// A low-cardinality `error.type` for a transport failure.
pub fn error_type(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "response_body"
    } else if error.is_redirect() {
        "redirect"
    } else {
        "request"
    }
}

/// `url.full` without credentials and with sensitive query values replaced by `REDACTED`.
pub(crate) fn redact_url(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    if !url.username().is_empty() {
        let _ = url.set_username("REDACTED");
    }
    if url.password().is_some() {
        let _ = url.set_password(Some("REDACTED"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if SENSITIVE_QUERY_PARAMS.contains(&k.as_ref()) {
                    "REDACTED".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("http://fraud:8082/v1/score", "http://fraud:8082/v1/score")]
    #[case(
        "https://user:pw@api.example.com/x",
        "https://REDACTED:REDACTED@api.example.com/x"
    )]
    #[case(
        "https://s3/o?Signature=abc&x=1",
        "https://s3/o?Signature=REDACTED&x=1"
    )]
    #[case("https://h/p?sig=zz", "https://h/p?sig=REDACTED")]
    fn url_full_is_redacted(#[case] input: &str, #[case] expected: &str) {
        let url = reqwest::Url::parse(input).expect("url");
        assert_eq!(redact_url(&url), expected);
    }

    #[tokio::test]
    async fn a_request_with_an_invalid_url_fails_to_send_with_a_builder_error() {
        let policy = PropagationPolicy {
            internal_hosts: Vec::new(),
            trace_headers_to_external: false,
        };
        let client = TracedClient::new(reqwest::Client::new(), policy);
        let error = client
            .post("not a url")
            .json(&[1, 2])
            .send()
            .await
            .expect_err("invalid url");
        assert!(error.is_builder(), "{error:?}");
    }

    #[test]
    fn a_request_dropped_mid_flight_ends_its_span_as_cancelled() {
        use opentelemetry::trace::SpanKind;
        let capture = test_harness::SpanCapture::start();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            // Accepts connections and never answers.
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((socket, _)) = listener.accept().await {
                    held.push(socket);
                }
            });
            let client = TracedClient::new(
                reqwest::Client::new(),
                crate::PropagationPolicy {
                    internal_hosts: vec![],
                    trace_headers_to_external: false,
                },
            );
            let call = client.get(format!("http://{addr}/slow")).send();
            let outcome = tokio::time::timeout(std::time::Duration::from_millis(200), call).await;
            assert!(outcome.is_err(), "the caller's deadline passed first");
        });
        let spans = capture.finished_spans();
        let span = spans
            .iter()
            .find(|s| s.span_kind == SpanKind::Client)
            .expect("client span");
        let error_type = span
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "error.type")
            .map(|kv| kv.value.to_string());
        assert_eq!(error_type.as_deref(), Some("cancelled"));
        assert!(matches!(
            span.status,
            opentelemetry::trace::Status::Error { .. }
        ));
    }
}
