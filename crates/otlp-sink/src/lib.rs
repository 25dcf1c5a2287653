//! An in-process OTLP receiver for tests and the `shopmax` CLI: it listens for OTLP/gRPC and
//! OTLP/HTTP (protobuf and JSON), keeps every export request it receives (or hands each trace
//! request to an observer that keeps what it wants), and lets a test wait until the spans,
//! metrics or logs it expects have arrived.
//!
//! It exists so that tests prove the real wire path (SDK → exporter → network → decoder) without a
//! Collector or Docker, which our machines do not have.
//!
//! # Layout
//! - [`OtlpSink::start`] binds both listeners on port 0 and serves them on the current runtime;
//!   [`OtlpSink::start_tls`] does the same over TLS ([`SinkTls`], mutual TLS when it names a
//!   client CA).
//! - [`Received`] holds the decoded requests; [`SpanView`] flattens a span with its resource.
//! - [`OtlpSink::set_unavailable`] makes every endpoint answer "unavailable" to test exporter
//!   failure; [`OtlpSink::set_stuck`] makes it never answer, [`OtlpSink::set_delay`] answer
//!   late; [`OtlpSink::set_count_only`] keeps
//!   only [`OtlpSink::span_count`], for load.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tonic::codec::CompressionEncoding;

const GZIP: CompressionEncoding = CompressionEncoding::Gzip;

/// Which wire protocol delivered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with a protobuf body.
    HttpProtobuf,
    /// OTLP/HTTP with a JSON body.
    HttpJson,
}

/// Everything the sink has received so far.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// Trace export requests with the transport that carried them.
    pub traces: Vec<(Transport, ExportTraceServiceRequest)>,
    /// Metric export requests.
    pub metrics: Vec<(Transport, ExportMetricsServiceRequest)>,
    /// Log export requests.
    pub logs: Vec<(Transport, ExportLogsServiceRequest)>,
    /// Request headers of every export call, to check OTEL_EXPORTER_OTLP_HEADERS.
    pub headers: Vec<Vec<(String, String)>>,
}

/// A span flattened with the resource and scope it arrived under.
#[derive(Debug, Clone)]
pub struct SpanView {
    /// The transport that delivered it.
    pub transport: Transport,
    /// Resource attributes as strings.
    pub resource: Vec<(String, String)>,
    /// The instrumentation scope name.
    pub scope: String,
    /// The span itself.
    pub span: Span,
}

impl SpanView {
    /// The resource attribute `key`, rendered as a string.
    pub fn resource_attr(&self, key: &str) -> Option<&str> {
        self.resource
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The span attribute `key`, rendered as a string.
    pub fn attr(&self, key: &str) -> Option<String> {
        attr_string(&self.span.attributes, key)
    }

    /// Lower-case hex trace id.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// Lower-case hex span id.
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// Lower-case hex parent span id; empty for a root span.
    pub fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
}

/// Renders the attribute `key` of `attrs` as a string (ints and bools in their usual form).
pub fn attr_string(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(any_value_string)
}

fn any_value_string(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(any_value_string).collect();
            format!("[{}]", items.join(","))
        }
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Default)]
struct Inner {
    received: Mutex<Received>,
    /// Sees every accepted trace export request (see [`SinkOptions::observer`]).
    observer: Observer,
    changed: Notify,
    unavailable: AtomicBool,
    stuck: AtomicBool,
    count_only: AtomicBool,
    spans: AtomicU64,
    /// Milliseconds every export waits before it is answered.
    delay_ms: AtomicU64,
}

impl Inner {
    fn record(&self, f: impl FnOnce(&mut Received)) {
        if self.count_only.load(Ordering::Relaxed) {
            return;
        }
        f(&mut self.received.lock().expect("sink mutex poisoned"));
        self.changed.notify_waiters();
    }

    /// Whether an export may be accepted; never resolves while the sink is set stuck.
    async fn admit(&self) -> bool {
        if self.stuck.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        !self.unavailable.load(Ordering::SeqCst)
    }

    fn count<M: SpanCount>(&self, request: &M) {
        self.spans
            .fetch_add(request.span_count(), Ordering::Relaxed);
        request.observe(self.observer.0.as_ref());
    }
}

/// Called with every trace export request the sink accepts, whether it keeps it or not.
pub type TraceObserver = Arc<dyn Fn(&ExportTraceServiceRequest) + Send + Sync>;

#[derive(Default)]
struct Observer(Option<TraceObserver>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Observer(set)"
        } else {
            "Observer(none)"
        })
    }
}

/// How [`OtlpSink::serve_with_options`] serves.
#[derive(Default)]
pub struct SinkOptions {
    /// Serve over TLS.
    pub tls: Option<SinkTls>,
    /// Sees every accepted trace export request: a store of its own, for a sink that keeps
    /// nothing itself ([`OtlpSink::set_count_only`]).
    pub observer: Option<TraceObserver>,
    /// More routes on the HTTP listener, next to `/v1/traces`, `/v1/metrics` and `/v1/logs`.
    pub routes: Option<Router>,
}

impl std::fmt::Debug for SinkOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkOptions")
            .field("tls", &self.tls.is_some())
            .field("observer", &self.observer.is_some())
            .field("routes", &self.routes.is_some())
            .finish()
    }
}

/// Spans in an export request (none in metric and log requests).
trait SpanCount {
    fn span_count(&self) -> u64 {
        0
    }

    fn observe(&self, _observer: Option<&TraceObserver>) {}
}

impl SpanCount for ExportTraceServiceRequest {
    fn observe(&self, observer: Option<&TraceObserver>) {
        if let Some(observer) = observer {
            observer(self);
        }
    }

    fn span_count(&self) -> u64 {
        let spans: usize = self
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        u64::try_from(spans).unwrap_or(u64::MAX)
    }
}

impl SpanCount for ExportMetricsServiceRequest {}
impl SpanCount for ExportLogsServiceRequest {}

/// A running OTLP receiver. Dropping it stops nothing by itself; the servers live as long as the
/// runtime that started them.
#[derive(Debug, Clone)]
pub struct OtlpSink {
    inner: Arc<Inner>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    scheme: &'static str,
}

/// TLS for the receiver, all PEM: its certificate chain and key, and, for mutual TLS, the CA
/// that client certificates must chain to (a client without one is then refused).
#[derive(Debug, Clone)]
pub struct SinkTls {
    /// The server's certificate chain.
    pub cert_pem: Vec<u8>,
    /// The server's private key.
    pub key_pem: Vec<u8>,
    /// The CA of accepted client certificates; `None` accepts any client.
    pub client_ca_pem: Option<Vec<u8>>,
}

impl SinkTls {
    /// The rustls configuration of the HTTP listener.
    fn rustls(&self) -> std::io::Result<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let invalid = |e: &dyn std::fmt::Display| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
        };
        let certs = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(&e))?;
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| invalid(&e))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(&e))?;
        let builder = match &self.client_ca_pem {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca) {
                    roots
                        .add(cert.map_err(|e| invalid(&e))?)
                        .map_err(|e| invalid(&e))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| invalid(&e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|e| invalid(&e))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The tonic configuration of the gRPC listener.
    fn tonic(&self) -> tonic::transport::ServerTlsConfig {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let config =
            ServerTlsConfig::new().identity(Identity::from_pem(&self.cert_pem, &self.key_pem));
        match &self.client_ca_pem {
            Some(ca) => config.client_ca_root(Certificate::from_pem(ca)),
            None => config,
        }
    }
}

impl OtlpSink {
    /// Binds gRPC and HTTP listeners on 127.0.0.1 port 0 and serves them on the current runtime.
    pub async fn start() -> std::io::Result<Self> {
        let grpc = TcpListener::bind("127.0.0.1:0").await?;
        let http = TcpListener::bind("127.0.0.1:0").await?;
        Self::serve(grpc, http).await
    }

    /// Like [`Self::start`], over TLS: the endpoints are `https://127.0.0.1:PORT`.
    pub async fn start_tls(tls: SinkTls) -> std::io::Result<Self> {
        let grpc = TcpListener::bind("127.0.0.1:0").await?;
        let http = TcpListener::bind("127.0.0.1:0").await?;
        Self::serve_with(grpc, http, Some(tls)).await
    }

    /// Serves on listeners the caller bound (to use fixed ports, as a compose file would).
    pub async fn serve(grpc: TcpListener, http: TcpListener) -> std::io::Result<Self> {
        Self::serve_with(grpc, http, None).await
    }

    /// Serves on listeners the caller bound, as `options` say.
    pub async fn serve_with_options(
        grpc: TcpListener,
        http: TcpListener,
        options: SinkOptions,
    ) -> std::io::Result<Self> {
        let SinkOptions {
            tls,
            observer,
            routes,
        } = options;
        Self::serve_inner(grpc, http, tls, observer, routes).await
    }

    async fn serve_with(
        grpc: TcpListener,
        http: TcpListener,
        tls: Option<SinkTls>,
    ) -> std::io::Result<Self> {
        Self::serve_inner(grpc, http, tls, None, None).await
    }

    async fn serve_inner(
        grpc: TcpListener,
        http: TcpListener,
        tls: Option<SinkTls>,
        observer: Option<TraceObserver>,
        routes: Option<Router>,
    ) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            observer: Observer(observer),
            ..Inner::default()
        });
        let grpc_addr = grpc.local_addr()?;
        let http_addr = http.local_addr()?;
        let http_tls = tls.as_ref().map(SinkTls::rustls).transpose()?;

        let svc = GrpcSvc(inner.clone());
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc);
        let mut server = tonic::transport::Server::builder();
        if let Some(tls) = &tls {
            server = server
                .tls_config(tls.tonic())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        }
        tokio::spawn(async move {
            let result = server
                .add_service(TraceServiceServer::new(svc.clone()).accept_compressed(GZIP))
                .add_service(MetricsServiceServer::new(svc.clone()).accept_compressed(GZIP))
                .add_service(LogsServiceServer::new(svc).accept_compressed(GZIP))
                .serve_with_incoming(incoming)
                .await;
            if let Err(error) = result {
                tracing::error!(%error, "otlp_sink.grpc.stopped");
            }
        });

        let mut app = Router::new()
            .route("/v1/traces", post(http_traces))
            .route("/v1/metrics", post(http_metrics))
            .route("/v1/logs", post(http_logs))
            .with_state(inner.clone());
        if let Some(routes) = routes {
            app = app.merge(routes);
        }
        match http_tls {
            None => {
                tokio::spawn(async move {
                    if let Err(error) = axum::serve(http, app).await {
                        tracing::error!(%error, "otlp_sink.http.stopped");
                    }
                });
            }
            Some(config) => {
                tokio::spawn(serve_https(
                    http,
                    tokio_rustls::TlsAcceptor::from(Arc::new(config)),
                    app,
                ));
            }
        }

        Ok(Self {
            inner,
            grpc_addr,
            http_addr,
            scheme: if tls.is_some() { "https" } else { "http" },
        })
    }

    /// `http://127.0.0.1:PORT` (`https` with TLS) of the gRPC listener.
    pub fn grpc_endpoint(&self) -> String {
        format!("{}://{}", self.scheme, self.grpc_addr)
    }

    /// `http://127.0.0.1:PORT` (`https` with TLS) of the HTTP listener, without a `/v1/...` path.
    pub fn http_endpoint(&self) -> String {
        format!("{}://{}", self.scheme, self.http_addr)
    }

    /// While set, every endpoint answers "unavailable" (gRPC) or 503 (HTTP) and stores nothing.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.inner.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// Every export is answered only after `delay`: a slow collector.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.inner.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// While set, exports are accepted and counted but not kept: for load, where keeping every
    /// request would grow without bound.
    pub fn set_count_only(&self, count_only: bool) {
        self.inner.count_only.store(count_only, Ordering::SeqCst);
    }

    /// While set, every export is accepted on the wire and never answered, like a Collector
    /// that hangs.
    pub fn set_stuck(&self, stuck: bool) {
        self.inner.stuck.store(stuck, Ordering::SeqCst);
    }

    /// Spans accepted so far, by any transport, kept or only counted.
    pub fn span_count(&self) -> u64 {
        self.inner.spans.load(Ordering::Relaxed)
    }

    /// A copy of everything received so far.
    pub fn received(&self) -> Received {
        self.inner
            .received
            .lock()
            .expect("sink mutex poisoned")
            .clone()
    }

    /// Every span received so far, flattened.
    pub fn spans(&self) -> Vec<SpanView> {
        let received = self.received();
        let mut out = Vec::new();
        for (transport, req) in &received.traces {
            for rs in &req.resource_spans {
                let resource: Vec<(String, String)> = rs
                    .resource
                    .as_ref()
                    .map(|r| {
                        r.attributes
                            .iter()
                            .map(|kv| {
                                (
                                    kv.key.clone(),
                                    kv.value.as_ref().map(any_value_string).unwrap_or_default(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    let scope = ss
                        .scope
                        .as_ref()
                        .map(|s| s.name.clone())
                        .unwrap_or_default();
                    for span in &ss.spans {
                        out.push(SpanView {
                            transport: *transport,
                            resource: resource.clone(),
                            scope: scope.clone(),
                            span: span.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// Every span of `trace_id` (lowercase hex) received so far.
    pub fn trace(&self, trace_id: &str) -> Vec<SpanView> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id() == trace_id)
            .collect()
    }

    /// Waits until the span named `last` of `trace_id` has arrived (the one that ends last, so
    /// that what came before it is in too), or `timeout` passes; returns the trace's spans.
    pub async fn wait_for_trace(
        &self,
        trace_id: &str,
        last: &str,
        timeout: Duration,
    ) -> Vec<SpanView> {
        self.wait_for_spans(1, timeout, |s| {
            s.trace_id() == trace_id && s.span.name == last
        })
        .await;
        self.trace(trace_id)
    }

    /// Names of every metric received so far (with repeats).
    pub fn metric_names(&self) -> Vec<String> {
        self.received()
            .metrics
            .iter()
            .flat_map(|(_, r)| r.resource_metrics.iter())
            .flat_map(|rm| rm.scope_metrics.iter())
            .flat_map(|sm| sm.metrics.iter())
            .map(|m| m.name.clone())
            .collect()
    }

    /// Every data point of the histograms and sums named `name` received so far, in OTLP/JSON
    /// form (`attributes`, `count`, `asDouble`, ...).
    pub fn metric_points(&self, name: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for (_, request) in self.received().metrics {
            for metric in request
                .resource_metrics
                .iter()
                .flat_map(|rm| rm.scope_metrics.iter())
                .flat_map(|sm| sm.metrics.iter())
                .filter(|m| m.name == name)
            {
                let Ok(json) = serde_json::to_value(metric) else {
                    continue;
                };
                let points = json
                    .pointer("/histogram/dataPoints")
                    .or_else(|| json.pointer("/sum/dataPoints"))
                    .and_then(serde_json::Value::as_array);
                out.extend(points.into_iter().flatten().cloned());
            }
        }
        out
    }

    /// Waits until `done(self)` holds or `timeout` passes; returns whether it held.
    pub async fn wait_until(&self, timeout: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.changed.notified();
            if done(self) {
                return true;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            // Re-check at least every 50 ms in case a notification raced the check above.
            let step = (deadline - now).min(Duration::from_millis(50));
            let _ = tokio::time::timeout(step, notified).await;
        }
    }

    /// Waits until at least `n` spans satisfy `pred`; returns the matching spans.
    pub async fn wait_for_spans(
        &self,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&SpanView) -> bool,
    ) -> Vec<SpanView> {
        self.wait_until(timeout, |s| {
            s.spans().iter().filter(|v| pred(v)).count() >= n
        })
        .await;
        self.spans().into_iter().filter(|v| pred(v)).collect()
    }
}

#[derive(Debug, Clone)]
struct GrpcSvc(Arc<Inner>);

impl GrpcSvc {
    async fn check(&self, meta: &tonic::metadata::MetadataMap) -> Result<(), tonic::Status> {
        if !self.0.admit().await {
            return Err(tonic::Status::unavailable("sink set unavailable"));
        }
        let headers = meta
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        self.0.record(|r| r.headers.push(headers));
        Ok(())
    }
}

#[tonic::async_trait]
impl TraceService for GrpcSvc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.check(request.metadata()).await?;
        let req = request.into_inner();
        self.0.count(&req);
        self.0.record(|r| r.traces.push((Transport::Grpc, req)));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for GrpcSvc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.check(request.metadata()).await?;
        let req = request.into_inner();
        self.0.count(&req);
        self.0.record(|r| r.metrics.push((Transport::Grpc, req)));
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for GrpcSvc {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.check(request.metadata()).await?;
        let req = request.into_inner();
        self.0.count(&req);
        self.0.record(|r| r.logs.push((Transport::Grpc, req)));
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// Accepts TLS connections and serves `app` on each (HTTP/1.1 or HTTP/2, by ALPN). A client that
/// fails the handshake (an untrusted or missing client certificate) is dropped.
async fn serve_https(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor, app: Router) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
        });
    }
}

/// Decodes an OTLP/HTTP body as protobuf or JSON, by content type, as the OTLP spec requires.
fn decode<M>(headers: &HeaderMap, body: &Bytes) -> Result<(Transport, M), StatusCode>
where
    M: Message + Default + serde::de::DeserializeOwned,
{
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let gzipped = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let inflated;
    let body: &Bytes = if gzipped {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body.as_ref()), &mut out)
            .map_err(|_| StatusCode::BAD_REQUEST)?;
        inflated = Bytes::from(out);
        &inflated
    } else {
        body
    };
    if content_type.starts_with("application/x-protobuf") {
        M::decode(body.as_ref())
            .map(|m| (Transport::HttpProtobuf, m))
            .map_err(|_| StatusCode::BAD_REQUEST)
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice(body)
            .map(|m| (Transport::HttpJson, m))
            .map_err(|_| StatusCode::BAD_REQUEST)
    } else {
        Err(StatusCode::UNSUPPORTED_MEDIA_TYPE)
    }
}

fn http_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn ok_response<M: Message>(transport: Transport, response: M) -> axum::response::Response {
    match transport {
        Transport::HttpJson => (
            [(header::CONTENT_TYPE, "application/json")],
            Bytes::from_static(b"{}"),
        )
            .into_response(),
        _ => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            response.encode_to_vec(),
        )
            .into_response(),
    }
}

macro_rules! http_handler {
    ($name:ident, $req:ty, $resp:ty, $field:ident) => {
        async fn $name(
            State(inner): State<Arc<Inner>>,
            headers: HeaderMap,
            body: Bytes,
        ) -> axum::response::Response {
            if !inner.admit().await {
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            match decode::<$req>(&headers, &body) {
                Ok((transport, req)) => {
                    inner.count(&req);
                    inner.record(|r| {
                        r.headers.push(http_headers(&headers));
                        r.$field.push((transport, req));
                    });
                    ok_response(transport, <$resp>::default())
                }
                Err(status) => status.into_response(),
            }
        }
    };
}

http_handler!(
    http_traces,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
    traces
);
http_handler!(
    http_metrics,
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
    metrics
);
http_handler!(
    http_logs,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
    logs
);

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    fn two_spans() -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span::default(), Span::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[tokio::test]
    async fn count_only_counts_spans_and_keeps_nothing_and_a_stuck_sink_never_answers() {
        let sink = OtlpSink::start().await.expect("sink");
        sink.set_count_only(true);
        let mut client = TraceServiceClient::connect(sink.grpc_endpoint())
            .await
            .expect("connect");
        client.export(two_spans()).await.expect("accepted");
        assert_eq!(sink.span_count(), 2);
        assert!(sink.received().traces.is_empty(), "nothing kept");

        sink.set_stuck(true);
        let answer =
            tokio::time::timeout(Duration::from_millis(300), client.export(two_spans())).await;
        assert!(answer.is_err(), "a stuck sink never answers");
        assert_eq!(sink.span_count(), 2);

        sink.set_stuck(false);
        sink.set_unavailable(true);
        let refused = client.export(two_spans()).await.expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::Unavailable);
    }
}
