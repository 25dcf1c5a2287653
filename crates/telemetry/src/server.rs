//! Inbound HTTP: a tower layer that makes the SERVER span of every request per the HTTP semantic
//! conventions, parented on the caller's W3C context, and records `http.server.request.duration`.
//!
//! The span lives until the response body is finished, not just until the handler returns, so a
//! streamed (SSE) answer is measured whole. Health probes are left untraced: they would drown the
//! real traffic in Jaeger and cost export bandwidth every few seconds.

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath};
use bytes::Buf;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Version, header};
use http_body::{Body, Frame, SizeHint};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;
use opentelemetry::trace::{Status, TraceContextExt};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::propagation::{HeaderExtractor, traceparent_value};

/// Layer that traces every request except the untraced paths.
#[derive(Clone)]
pub struct HttpServerLayer {
    untraced: Arc<[String]>,
    traceresponse: bool,
    duration: Histogram<f64>,
    trusted_proxies: Arc<[ipnet::IpNet]>,
    forwarded_header: crate::ForwardedHeader,
    edge: Option<Arc<crate::EdgeTrust>>,
}

impl fmt::Debug for HttpServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerLayer")
            .field("untraced", &self.untraced)
            .field("traceresponse", &self.traceresponse)
            .finish()
    }
}

impl Default for HttpServerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpServerLayer {
    /// Traces everything but `/healthz` and `/readyz`. Build it after [`crate::init`] so the
    /// duration histogram binds to the real meter provider.
    pub fn new() -> Self {
        let (proxies, forwarded_header) = crate::caller::trusted_proxies();
        Self {
            untraced: Arc::from(vec!["/healthz".to_owned(), "/readyz".to_owned()]),
            traceresponse: false,
            duration: crate::metrics::server_duration(),
            trusted_proxies: proxies.into(),
            forwarded_header,
            edge: None,
        }
    }

    /// Makes this service the public edge: callers outside `trust` are untrusted
    /// ([`crate::Caller::trusted`]), and their `traceparent` is continued without obeying its
    /// sampled flag (see [`crate::EdgeTrust`]).
    pub fn edge(mut self, trust: crate::EdgeTrust) -> Self {
        self.edge = Some(Arc::new(trust));
        self
    }

    /// Replaces the proxies whose forwarding headers are believed (by default those of
    /// `TELEMETRY_TRUSTED_PROXIES` as read by [`crate::init`]).
    pub fn trusted_proxies(mut self, networks: impl IntoIterator<Item = ipnet::IpNet>) -> Self {
        self.trusted_proxies = networks.into_iter().collect::<Vec<_>>().into();
        self
    }

    /// Replaces the list of untraced paths.
    pub fn untraced_paths(mut self, paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.untraced = paths.into_iter().map(Into::into).collect::<Vec<_>>().into();
        self
    }

    /// Adds the W3C Trace Context Level 2 `traceresponse` header to every traced response.
    pub fn with_traceresponse(mut self, enabled: bool) -> Self {
        self.traceresponse = enabled;
        self
    }
}

impl<S> Layer<S> for HttpServerLayer {
    type Service = HttpServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpServerService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`HttpServerLayer`] produces.
#[derive(Clone)]
pub struct HttpServerService<S> {
    inner: S,
    layer: HttpServerLayer,
}

impl<S> fmt::Debug for HttpServerService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerService").finish_non_exhaustive()
    }
}

/// The semantic-convention method name: known methods as-is, anything else `_OTHER`.
pub(crate) fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

/// The `{method}` of a span name: the method name, except that `_OTHER` becomes `HTTP`, as the
/// HTTP conventions require ("If the method is `_OTHER`, then `{method}` MUST be `HTTP`").
pub(crate) fn span_name_method(method: &'static str) -> &'static str {
    if method == "_OTHER" { "HTTP" } else { method }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Baggage an untrusted caller keeps: a session id, which the edge may take as a hint.
const UNTRUSTED_BAGGAGE_KEYS: &[&str] = &["session.id"];

/// An untrusted caller's remote context as the edge continues it: the trace (trace id, parent
/// span id, tracestate and the other flags as sent) with the sampled flag set, so the caller
/// cannot switch recording off for its own requests by sending `-00`; and its baggage cut down
/// to [`UNTRUSTED_BAGGAGE_KEYS`], so no span (the SERVER span included) carries an identity the
/// caller made up.
fn untrusted_parent(parent: opentelemetry::Context) -> opentelemetry::Context {
    use opentelemetry::baggage::{BaggageExt as _, KeyValueMetadata};
    use opentelemetry::trace::{SpanContext, TraceFlags};
    let kept: Vec<KeyValueMetadata> = parent
        .baggage()
        .iter()
        .filter(|(k, _)| UNTRUSTED_BAGGAGE_KEYS.contains(&k.as_str()))
        .map(|(k, (v, meta))| KeyValueMetadata::new(k.clone(), v.clone(), meta.clone()))
        .collect();
    let parent = parent.with_baggage(kept);
    let sc = parent.span().span_context().clone();
    if !sc.is_valid() || sc.is_sampled() {
        return parent;
    }
    let flags = sc.trace_flags() | TraceFlags::SAMPLED;
    let sc = SpanContext::new(
        sc.trace_id(),
        sc.span_id(),
        flags,
        true,
        sc.trace_state().clone(),
    );
    parent.with_remote_span_context(sc)
}

/// `server.address` and `server.port` from the Host header (or the HTTP/2 authority).
fn server_address<B>(req: &Request<B>) -> (Option<String>, Option<u16>) {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| header_str(req.headers(), "host").map(str::to_owned));
    let Some(authority) = authority else {
        return (None, None);
    };
    match authority.parse::<http::uri::Authority>() {
        Ok(a) => (Some(a.host().to_owned()), a.port_u16()),
        Err(_) => (None, None),
    }
}

fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

impl<S, B, ResBody> Service<Request<B>> for HttpServerService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if self.layer.untraced.iter().any(|p| p == req.uri().path()) {
            return ResponseFuture {
                inner: self.inner.call(req),
                state: None,
            };
        }

        let mut parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(req.headers()))
        });
        let method = method_name(req.method());
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|m| m.as_str().to_owned());
        let name = match &route {
            Some(route) => format!("{} {route}", span_name_method(method)),
            None => span_name_method(method).to_owned(),
        };
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let (server_address, server_port) = server_address(&req);
        let scheme: &'static str = match header_str(req.headers(), "x-forwarded-proto") {
            Some("https") => "https",
            _ => "http",
        };
        let version = protocol_version(req.version());

        let span = tracing::info_span!(
            "HTTP request",
            otel.name = %name,
            otel.kind = "server",
            http.request.method = method,
            http.request.method_original = Empty,
            http.route = Empty,
            url.path = req.uri().path(),
            url.query = Empty,
            url.scheme = scheme,
            server.address = Empty,
            server.port = Empty,
            client.address = Empty,
            network.peer.address = Empty,
            network.protocol.version = version,
            user_agent.original = Empty,
            http.response.status_code = Empty,
            error.type = Empty,
        );
        if method == "_OTHER" {
            span.record("http.request.method_original", req.method().as_str());
        }
        if let Some(route) = &route {
            span.record("http.route", route.as_str());
        }
        if let Some(query) = req.uri().query() {
            span.record("url.query", query);
        }
        if let Some(address) = &server_address {
            span.record("server.address", address.as_str());
        }
        if let Some(port) = server_port {
            span.record("server.port", i64::from(port));
        }
        let caller = crate::caller::caller(
            req.headers(),
            peer,
            (&self.layer.trusted_proxies, self.layer.forwarded_header),
            self.layer.edge.as_deref(),
        );
        if !caller.trusted {
            parent = untrusted_parent(parent);
        }
        if let Some(client) = caller.client {
            span.record("client.address", client.to_string().as_str());
        }
        if let Some(peer) = peer {
            span.record("network.peer.address", peer.ip().to_string().as_str());
        }
        if let Some(ua) = header_str(req.headers(), "user-agent") {
            span.record("user_agent.original", ua);
        }
        let _ = span.set_parent(parent);

        let mut attrs = vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("url.scheme", scheme),
            KeyValue::new("network.protocol.version", version),
        ];
        if let Some(route) = route {
            attrs.push(KeyValue::new("http.route", route));
        }

        req.extensions_mut().insert(caller);
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        ResponseFuture {
            inner,
            state: Some(RequestState {
                span,
                start: Instant::now(),
                attrs,
                duration: self.layer.duration.clone(),
                traceresponse: self.layer.traceresponse,
            }),
        }
    }
}

struct RequestState {
    span: Span,
    start: Instant,
    attrs: Vec<KeyValue>,
    duration: Histogram<f64>,
    traceresponse: bool,
}

impl Drop for RequestState {
    fn drop(&mut self) {
        self.duration
            .record(self.start.elapsed().as_secs_f64(), &self.attrs);
    }
}

pin_project! {
    /// Future of [`HttpServerService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<RequestState>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResBody, E> std::future::Future for ResponseFuture<F>
where
    F: std::future::Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<TracedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.state {
            Some(state) => {
                let _entered = state.span.enter();
                ready!(this.inner.poll(cx))
            }
            None => ready!(this.inner.poll(cx)),
        };
        let mut state = this.state.take();
        match result {
            Ok(mut response) => {
                if let Some(state) = state.as_mut() {
                    let status = response.status().as_u16();
                    state
                        .span
                        .record("http.response.status_code", i64::from(status));
                    state.attrs.push(KeyValue::new(
                        "http.response.status_code",
                        i64::from(status),
                    ));
                    // Server spans are errors on 5xx only: a 4xx is the caller's mistake.
                    if status >= 500 {
                        state.span.record("error.type", status.to_string().as_str());
                        state.span.set_status(Status::error(""));
                        state
                            .attrs
                            .push(KeyValue::new("error.type", status.to_string()));
                    }
                    if state.traceresponse {
                        let cx = state.span.context();
                        let span_ref = cx.span();
                        let sc = span_ref.span_context();
                        if sc.is_valid()
                            && let Ok(value) = HeaderValue::from_str(&traceparent_value(&cx, sc))
                        {
                            response.headers_mut().insert("traceresponse", value);
                            // Browsers may only read it if exposed; harmless otherwise.
                            response.headers_mut().append(
                                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                                HeaderValue::from_static("traceresponse"),
                            );
                        }
                    }
                }
                Poll::Ready(Ok(response.map(|body| TracedBody { inner: body, state })))
            }
            Err(error) => {
                if let Some(state) = state.as_mut() {
                    state.span.record("error.type", "service_error");
                    state.span.set_status(Status::error("service error"));
                    state
                        .attrs
                        .push(KeyValue::new("error.type", "service_error"));
                }
                Poll::Ready(Err(error))
            }
        }
    }
}

pin_project! {
    /// Response body that ends the request span and records the duration when it is done.
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        state: Option<RequestState>,
    }
}

impl<B> fmt::Debug for TracedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedBody").finish_non_exhaustive()
    }
}

impl<B: Body> Body for TracedBody<B>
where
    B::Data: Buf,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let result = ready!(this.inner.poll_frame(cx));
        match &result {
            None => {
                // Finished: end the span now rather than whenever the body is dropped.
                // tracing-opentelemetry takes a span's end time from its last exit, and the
                // body is not polled inside the span: enter it once, so a streamed answer's
                // span ends with its last byte, not with its headers.
                if let Some(state) = this.state.take() {
                    state.span.in_scope(|| ());
                }
            }
            Some(Err(_)) => {
                if let Some(state) = this.state.take() {
                    state.span.record("error.type", "response_body");
                    state.span.set_status(Status::error("response body failed"));
                    state.span.in_scope(|| ());
                }
            }
            Some(Ok(_)) => {}
        }
        Poll::Ready(result)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The trace id of the current span as lower-case hex, for error bodies and replies.
pub fn current_trace_id() -> Option<String> {
    let cx = Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn the_edge_continues_an_untrusted_callers_trace_but_not_its_unsampled_flag() {
        use axum::routing::get;
        use tower::ServiceExt as _;
        opentelemetry::global::set_text_map_propagator(crate::TraceContextPropagator);
        let capture = test_harness::SpanCapture::start();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let unsampled = format!("00-{trace_id}-00f067aa0ba902b7-00");
        let gateway = crate::EdgeTrust {
            callers: vec![],
            token: Some(crate::SharedSecret::new("gateway-secret-0123")),
        };
        for (layer, token) in [
            // The edge, a public caller: recorded, in the caller's trace.
            (HttpServerLayer::new().edge(gateway.clone()), None),
            // The edge, its trusted gateway: the gateway's "not sampled" is obeyed.
            (
                HttpServerLayer::new().edge(gateway),
                Some("gateway-secret-0123"),
            ),
            // An internal service: every caller is trusted, "not sampled" obeyed.
            (HttpServerLayer::new(), None),
        ] {
            let app = axum::Router::new()
                .route("/x", get(|| async { "ok" }))
                .layer(layer);
            let mut request = Request::get("/x").header("traceparent", unsampled.as_str());
            if let Some(token) = token {
                request = request.header(crate::GATEWAY_TOKEN_HEADER, token);
            }
            let request = request.body(axum::body::Body::empty()).expect("request");
            let response = rt.block_on(app.oneshot(request)).expect("response");
            assert_eq!(response.status(), 200);
        }
        let spans = capture.finished_spans();
        let servers: Vec<_> = spans
            .iter()
            .filter(|s| s.span_kind == opentelemetry::trace::SpanKind::Server)
            .collect();
        assert_eq!(
            servers.len(),
            1,
            "only the public caller's request is recorded"
        );
        assert_eq!(servers[0].span_context.trace_id().to_string(), trace_id);
        assert_eq!(servers[0].parent_span_id.to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn the_edge_keeps_only_a_session_hint_of_an_untrusted_callers_baggage() {
        use axum::routing::get;
        use opentelemetry::baggage::BaggageExt as _;
        use tower::ServiceExt as _;
        opentelemetry::global::set_text_map_propagator(crate::BaggagePropagator);
        let _capture = test_harness::SpanCapture::start();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let echo = || async {
            let cx = Span::current().context();
            let mut keys: Vec<String> = cx.baggage().iter().map(|(k, _)| k.to_string()).collect();
            keys.sort();
            keys.join(",")
        };
        let gateway = crate::EdgeTrust {
            callers: vec![],
            token: Some(crate::SharedSecret::new("gateway-secret-0123")),
        };
        let mut seen = Vec::new();
        for token in [None, Some("gateway-secret-0123")] {
            let app = axum::Router::new()
                .route("/x", get(echo))
                .layer(HttpServerLayer::new().edge(gateway.clone()));
            let mut request =
                Request::get("/x").header("baggage", "user.id=evil,session.id=s-1,x=y");
            if let Some(token) = token {
                request = request.header(crate::GATEWAY_TOKEN_HEADER, token);
            }
            let request = request.body(axum::body::Body::empty()).expect("request");
            let response = rt.block_on(app.oneshot(request)).expect("response");
            let body = rt
                .block_on(axum::body::to_bytes(response.into_body(), 1024))
                .expect("body");
            seen.push(String::from_utf8_lossy(&body).into_owned());
        }
        assert_eq!(seen, ["session.id", "session.id,user.id,x"]);
    }

    #[rstest]
    #[case(Method::GET, "GET")]
    #[case(Method::from_bytes(b"PURGE").expect("method"), "_OTHER")]
    fn unknown_methods_are_other(#[case] method: Method, #[case] expected: &str) {
        assert_eq!(method_name(&method), expected);
    }

    #[rstest]
    #[case::known("GET", "GET")]
    #[case::other("_OTHER", "HTTP")]
    fn a_span_named_after_a_nonstandard_method_says_http(
        #[case] method: &'static str,
        #[case] expected: &str,
    ) {
        assert_eq!(span_name_method(method), expected);
    }
}
