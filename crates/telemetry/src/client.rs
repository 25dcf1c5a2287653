//! Outbound HTTP: a reqwest wrapper that makes the CLIENT span per the HTTP semantic conventions,
//! records `http.client.request.duration`, and injects the span's context under the outbound
//! policy: internal services get traceparent, tracestate and baggage; any other host (an external
//! LLM API) never gets baggage or tracestate, and gets traceparent only when configured to.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

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

    /// The wrapped client, to build requests with.
    pub fn inner(&self) -> &reqwest::Client {
        &self.inner
    }

    /// Sends `request` in a CLIENT span.
    pub async fn execute(
        &self,
        request: reqwest::Request,
    ) -> Result<reqwest::Response, reqwest::Error> {
        self.execute_with(request, RequestOptions::default()).await
    }

    /// Sends `request` in a CLIENT span, with the given details.
    pub async fn execute_with(
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
            Some(template) => format!("{method} {template}"),
            None => method.to_owned(),
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
        let result = self.inner.execute(request).instrument(span.clone()).await;
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
}
