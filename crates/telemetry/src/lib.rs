//! Telemetry for the ShopMax services: one call sets up traces, metrics and logs over OTLP,
//! W3C-exact context propagation, and the HTTP server and client instrumentation that makes one
//! trace span every service hop.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let service = telemetry::ServiceInfo { name: "chatbot", version: "0.1.0", site: "Bangalore" };
//! let _guard = telemetry::init(service)?; // flushes and shuts down on drop
//! let app = axum::Router::<()>::new().layer(telemetry::HttpServerLayer::new());
//! # Ok(()) }
//! ```
//!
//! Everything callers use is re-exported here; the modules themselves are private.
//!
//! # Layout
//! - `config`: every `OTEL_*` variable, parsed once through `env-config`; invalid values fall back
//!   with a warning ([`TelemetryConfig`]).
//! - `propagation`: W3C Trace Context Level 2 and Baggage propagators and header carriers.
//! - `server`: the tower layer that makes SERVER spans ([`HttpServerLayer`]); `client`: the
//!   traced reqwest wrapper ([`TracedClient`]).
//! - `batch`: the bounded, counting batch span processor ([`SpanPipelineStats`]); `metrics`:
//!   instruments.
//! - `baggage_attributes`: copies allow-listed baggage onto spans; `resource`: the resource.
//! - `caller`: the client address, believing forwarding headers only from trusted proxies
//!   ([`Caller`]).
//! - `logging`: stderr log lines with trace and span ids.

mod baggage_attributes;
mod batch;
mod caller;
mod client;
mod config;
mod logging;
mod metrics;
mod propagation;
mod resource;
mod server;

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{RandomIdGenerator, Sampler, SdkTracerProvider};
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, Registry};

pub use batch::SpanPipelineStats;
pub use caller::{
    Caller, EdgeTrust, ForwardedHeader, GATEWAY_TOKEN_HEADER, SharedSecret, read_networks,
};
pub use client::{
    RequestOptions, TracedClient, TracedRequestBuilder, error_type as client_error_type,
};
pub use config::{
    BatchConfig, ExporterKind, LogFormat, OtlpConfig, PropagationPolicy, PropagatorKind, Protocol,
    SamplerConfig, ServiceInfo, TelemetryConfig, TlsFiles,
};
pub use propagation::{BaggagePropagator, HeaderExtractor, HeaderInjector, TraceContextPropagator};
pub use server::{
    HttpServerLayer, HttpServerService, ResponseFuture, TracedBody, current_trace_id,
};

/// Crates whose own telemetry must not be traced or shipped over OTLP: exporting their events
/// would make the exporter report on itself, in a loop.
const PIPELINE_CRATES: &[&str] = &[
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "opentelemetry_http",
    "tonic",
    "h2",
    "hyper",
    "hyper_util",
    "tower",
    "reqwest",
];

/// Why [`init`] failed. Only a programming error is: telemetry settings that cannot be honoured
/// (an exporter that cannot be built, an unreadable certificate, an invalid `RUST_LOG`) are logged
/// as warnings and the service starts without that part.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A global tracing subscriber was already installed.
    #[error("a global tracing subscriber is already installed: {0}")]
    Subscriber(String),
}

/// Keeps the providers alive; dropping it flushes and shuts them down within the configured
/// timeout, so the last spans of a stopping service are not lost.
#[must_use = "dropping the guard shuts telemetry down at once"]
#[derive(Debug)]
pub struct TelemetryGuard {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    logger: Option<SdkLoggerProvider>,
    stats: Arc<SpanPipelineStats>,
    timeout: Duration,
    policy: PropagationPolicy,
}

impl TelemetryGuard {
    /// Counters of the span pipeline (enqueued, dropped, exported, failed).
    pub fn span_stats(&self) -> Arc<SpanPipelineStats> {
        self.stats.clone()
    }

    /// The outbound propagation policy from the configuration.
    pub fn propagation_policy(&self) -> PropagationPolicy {
        self.policy.clone()
    }

    /// Exports everything buffered now (spans, metrics, logs); errors are reported, not fatal.
    pub fn force_flush(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        if let Some(t) = &self.tracer
            && let Err(e) = t.force_flush()
        {
            errors.push(format!("traces: {e}"));
        }
        if let Some(m) = &self.meter
            && let Err(e) = m.force_flush()
        {
            errors.push(format!("metrics: {e}"));
        }
        if let Some(l) = &self.logger
            && let Err(e) = l.force_flush()
        {
            errors.push(format!("logs: {e}"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let deadline = Instant::now() + self.timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        // Traces first: they matter most and their final batch is usually the largest.
        if let Some(t) = self.tracer.take()
            && let Err(e) = t.shutdown_with_timeout(left())
        {
            eprintln!("telemetry.shutdown.traces_failed: {e}");
        }
        if let Some(l) = self.logger.take()
            && let Err(e) = l.shutdown_with_timeout(left())
        {
            eprintln!("telemetry.shutdown.logs_failed: {e}");
        }
        if let Some(m) = self.meter.take()
            && let Err(e) = m.shutdown_with_timeout(left())
        {
            eprintln!("telemetry.shutdown.metrics_failed: {e}");
        }
    }
}

/// Sets up telemetry from the environment and installs the global subscriber and providers.
pub fn init(service: ServiceInfo) -> Result<TelemetryGuard, InitError> {
    init_with(service, TelemetryConfig::from_env(&service))
}

/// The composite propagator the configuration asks for.
fn propagator(config: &TelemetryConfig) -> TextMapCompositePropagator {
    let parts: Vec<Box<dyn TextMapPropagator + Send + Sync>> = config
        .propagators
        .iter()
        .map(|kind| -> Box<dyn TextMapPropagator + Send + Sync> {
            match kind {
                config::PropagatorKind::TraceContext => {
                    Box::new(propagation::TraceContextPropagator)
                }
                config::PropagatorKind::Baggage => Box::new(propagation::BaggagePropagator),
            }
        })
        .collect();
    TextMapCompositePropagator::new(parts)
}

fn sampler(config: &config::SamplerConfig) -> Sampler {
    use config::SamplerConfig as S;
    match *config {
        S::AlwaysOn => Sampler::AlwaysOn,
        S::AlwaysOff => Sampler::AlwaysOff,
        S::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        S::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        S::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        S::ParentBasedTraceIdRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
    }
}

/// Sets up telemetry from an explicit configuration (tests build one from a map).
pub fn init_with(
    service: ServiceInfo,
    config: TelemetryConfig,
) -> Result<TelemetryGuard, InitError> {
    opentelemetry::global::set_text_map_propagator(propagator(&config));
    caller::set_trusted_proxies(config.trusted_proxies.clone(), config.forwarded_header);
    let stats = Arc::new(SpanPipelineStats::default());
    let fmt_layer = fmt_layer(&config);
    let mut skipped = Vec::new();
    let providers = if config.sdk_disabled {
        Providers::default()
    } else {
        Providers::build(&service, &config, &stats, &mut skipped)
    };
    providers.install_globally(&stats);
    let layers = subscriber_layers(fmt_layer, &providers, &config);
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .map_err(|e| InitError::Subscriber(e.to_string()))?;
    log_started(&config, &skipped);

    Ok(TelemetryGuard {
        tracer: providers.tracer,
        meter: providers.meter,
        logger: providers.logger,
        stats,
        timeout: config.shutdown_timeout,
        policy: config.propagation.clone(),
    })
}

type BoxedLayer = Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync>;

/// `RUST_LOG` as parsed (the configuration already replaced an invalid one with `info`), with
/// `extra` directives appended.
fn log_filter(config: &TelemetryConfig, extra: &str) -> EnvFilter {
    EnvFilter::try_new(format!("{}{extra}", config.log_filter))
        .unwrap_or_else(|_| EnvFilter::new(format!("info{extra}")))
}

/// The stderr log lines, filtered by `RUST_LOG`.
fn fmt_layer(config: &TelemetryConfig) -> BoxedLayer {
    let ansi = std::io::stderr().is_terminal() && config.log_format == LogFormat::Human;
    Box::new(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .fmt_fields(logging::NoSpanFields)
            .event_format(logging::EventFormat::new(config.log_format, ansi))
            .with_filter(log_filter(config, "")),
    )
}

/// The SDK providers; all absent with `OTEL_SDK_DISABLED=true`.
#[derive(Default)]
struct Providers {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    logger: Option<SdkLoggerProvider>,
}

impl Providers {
    /// Traces, metrics and logs. A signal whose exporter cannot be built is left out, and why is
    /// added to `skipped` (logged once logging is up); spans are still made and propagated.
    fn build(
        service: &ServiceInfo,
        config: &TelemetryConfig,
        stats: &Arc<SpanPipelineStats>,
        skipped: &mut Vec<String>,
    ) -> Self {
        let resource = resource::build(service, config);
        fn keep<T>(
            skipped: &mut Vec<String>,
            signal: &str,
            result: Result<Option<T>, String>,
        ) -> Option<T> {
            result.unwrap_or_else(|why| {
                skipped.push(format!("{signal}: {why}; {signal} are not exported"));
                None
            })
        }
        let span_export = keep(skipped, "traces", span_processor(config, stats));
        let meter = keep(skipped, "metrics", meter_provider(resource.clone(), config));
        let logger = keep(skipped, "logs", logger_provider(resource.clone(), config));
        Self {
            tracer: Some(tracer_provider(resource, config, span_export)),
            meter,
            logger,
        }
    }

    /// Makes the providers the global ones, and reports the span pipeline's health as metrics.
    fn install_globally(&self, stats: &Arc<SpanPipelineStats>) {
        if let Some(t) = &self.tracer {
            opentelemetry::global::set_tracer_provider(t.clone());
        }
        if let Some(m) = &self.meter {
            opentelemetry::global::set_meter_provider(m.clone());
            metrics::register_pipeline(
                &opentelemetry::global::meter(metrics::SCOPE),
                stats.clone(),
            );
        }
    }
}

/// The exporting span processor the configuration asks for, if any.
fn span_processor(
    config: &TelemetryConfig,
    stats: &Arc<SpanPipelineStats>,
) -> Result<Option<batch::BoundedBatchSpanProcessor>, String> {
    Ok(match config.traces_exporter {
        ExporterKind::None => None,
        ExporterKind::Otlp => {
            let timeout = config.traces_otlp.timeout.min(config.batch.export_timeout);
            let exporter = span_exporter(&config.traces_otlp, timeout)?;
            Some(batch::BoundedBatchSpanProcessor::new(
                exporter,
                config.batch,
                stats.clone(),
            ))
        }
        ExporterKind::Console => Some(batch::BoundedBatchSpanProcessor::new(
            opentelemetry_stdout::SpanExporter::default(),
            config.batch,
            stats.clone(),
        )),
    })
}

fn tracer_provider(
    resource: Resource,
    config: &TelemetryConfig,
    export: Option<batch::BoundedBatchSpanProcessor>,
) -> SdkTracerProvider {
    // The provider exists even with no span export (OTEL_TRACES_EXPORTER=none, or an exporter
    // that could not be built): spans are still made and context still propagates with our span
    // ids; only export is off. One processor: the baggage copier wraps the exporting one (see
    // its docs for why).
    SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler(&config.sampler))
        .with_id_generator(RandomIdGenerator::default())
        .with_span_processor(baggage_attributes::BaggageSpanProcessor::new(
            config.baggage_span_attributes.clone(),
            export,
        ))
        .build()
}

fn meter_provider(
    resource: Resource,
    config: &TelemetryConfig,
) -> Result<Option<SdkMeterProvider>, String> {
    let builder = SdkMeterProvider::builder().with_resource(resource);
    let interval = config.metric_export_interval;
    let builder = match config.metrics_exporter {
        ExporterKind::None => return Ok(None),
        ExporterKind::Otlp => {
            let timeout = config
                .metrics_otlp
                .timeout
                .min(config.metric_export_timeout);
            let exporter = metric_exporter(&config.metrics_otlp, timeout)?;
            builder.with_reader(
                PeriodicReader::builder(exporter)
                    .with_interval(interval)
                    .build(),
            )
        }
        ExporterKind::Console => {
            let exporter = opentelemetry_stdout::MetricExporter::default();
            builder.with_reader(
                PeriodicReader::builder(exporter)
                    .with_interval(interval)
                    .build(),
            )
        }
    };
    Ok(Some(builder.build()))
}

fn logger_provider(
    resource: Resource,
    config: &TelemetryConfig,
) -> Result<Option<SdkLoggerProvider>, String> {
    let builder = SdkLoggerProvider::builder().with_resource(resource);
    let builder = match config.logs_exporter {
        ExporterKind::None => return Ok(None),
        ExporterKind::Otlp => {
            builder.with_batch_exporter(log_exporter(&config.logs_otlp, config.logs_otlp.timeout)?)
        }
        ExporterKind::Console => {
            builder.with_batch_exporter(opentelemetry_stdout::LogExporter::default())
        }
    };
    Ok(Some(builder.build()))
}

// The three OTLP exporters have builders of unrelated types, so each signal has its own small
// function; what they share (endpoint, timeout, headers, compression, TLS) is in `grpc` and
// `http`.

fn span_exporter(
    otlp: &OtlpConfig,
    timeout: Duration,
) -> Result<opentelemetry_otlp::SpanExporter, String> {
    use opentelemetry_otlp::SpanExporter as E;
    match otlp.protocol {
        Protocol::Grpc => grpc(E::builder().with_tonic(), otlp, timeout)?.build(),
        Protocol::HttpProtobuf | Protocol::HttpJson => {
            http(E::builder().with_http(), otlp, timeout)?.build()
        }
    }
    .map_err(|e| e.to_string())
}

fn metric_exporter(
    otlp: &OtlpConfig,
    timeout: Duration,
) -> Result<opentelemetry_otlp::MetricExporter, String> {
    use opentelemetry_otlp::MetricExporter as E;
    match otlp.protocol {
        Protocol::Grpc => grpc(E::builder().with_tonic(), otlp, timeout)?.build(),
        Protocol::HttpProtobuf | Protocol::HttpJson => {
            http(E::builder().with_http(), otlp, timeout)?.build()
        }
    }
    .map_err(|e| e.to_string())
}

fn log_exporter(
    otlp: &OtlpConfig,
    timeout: Duration,
) -> Result<opentelemetry_otlp::LogExporter, String> {
    use opentelemetry_otlp::LogExporter as E;
    match otlp.protocol {
        Protocol::Grpc => grpc(E::builder().with_tonic(), otlp, timeout)?.build(),
        Protocol::HttpProtobuf | Protocol::HttpJson => {
            http(E::builder().with_http(), otlp, timeout)?.build()
        }
    }
    .map_err(|e| e.to_string())
}

/// Reads one PEM file named by a TLS setting; the error names the file and what it was for. A
/// file without a single PEM block (`-----BEGIN `) is refused here: the TLS libraries would
/// accept it and fail every handshake later, with no word of why.
fn read_pem(path: &std::path::Path, what: &str) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))?;
    if !pem.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(format!("the {what} {} holds no PEM block", path.display()));
    }
    Ok(pem)
}

/// Whether `endpoint` is `https://` (TLS files only matter then).
fn is_https(endpoint: &str) -> bool {
    endpoint
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// OTLP/gRPC settings of any exporter builder: headers become metadata (entries that are not
/// valid metadata are skipped); an `https` endpoint gets TLS with the system's and Mozilla's
/// roots, plus the configured CA and client identity.
fn grpc<B: WithExportConfig + WithTonicConfig>(
    builder: B,
    otlp: &OtlpConfig,
    timeout: Duration,
) -> Result<B, String> {
    // The exporter needs a runtime to drive its connection; without one it would fail later.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err("OTLP over gRPC needs a Tokio runtime: call init from inside one".to_owned());
    }
    let mut metadata = tonic::metadata::MetadataMap::new();
    for (k, v) in &otlp.headers {
        if let (Ok(k), Ok(v)) = (
            k.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
            v.parse(),
        ) {
            metadata.insert(k, v);
        }
    }
    let mut builder = builder
        .with_endpoint(otlp.endpoint.clone())
        .with_timeout(timeout)
        .with_metadata(metadata);
    if is_https(&otlp.endpoint) {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let mut tls = ClientTlsConfig::new().with_enabled_roots();
        if let Some(ca) = &otlp.tls.certificate {
            tls = tls.ca_certificate(Certificate::from_pem(read_pem(ca, "CA certificate")?));
        }
        if let (Some(cert), Some(key)) = (&otlp.tls.client_certificate, &otlp.tls.client_key) {
            tls = tls.identity(Identity::from_pem(
                read_pem(cert, "client certificate")?,
                read_pem(key, "client key")?,
            ));
        }
        builder = builder.with_tls_config(tls);
    }
    Ok(if otlp.gzip {
        builder.with_compression(opentelemetry_otlp::Compression::Gzip)
    } else {
        builder
    })
}

/// OTLP/HTTP settings of any exporter builder, protobuf or JSON bodies. With TLS files set, the
/// exporter gets its own blocking client that trusts the CA and presents the client identity.
fn http<B: WithExportConfig + WithHttpConfig>(
    builder: B,
    otlp: &OtlpConfig,
    timeout: Duration,
) -> Result<B, String> {
    let mut builder = builder
        .with_protocol(if otlp.protocol == Protocol::HttpJson {
            opentelemetry_otlp::Protocol::HttpJson
        } else {
            opentelemetry_otlp::Protocol::HttpBinary
        })
        .with_endpoint(otlp.endpoint.clone())
        .with_timeout(timeout)
        .with_headers(otlp.headers.iter().cloned().collect::<HashMap<_, _>>());
    if otlp.tls.any() {
        builder = builder.with_http_client(tls_http_client(&otlp.tls, timeout)?);
    }
    Ok(if otlp.gzip {
        builder.with_compression(opentelemetry_otlp::Compression::Gzip)
    } else {
        builder
    })
}

/// A blocking reqwest client for OTLP/HTTP that trusts `tls.certificate` besides the usual roots
/// and presents the client certificate and key when both are set.
fn tls_http_client(tls: &TlsFiles, timeout: Duration) -> Result<reqwest::blocking::Client, String> {
    let mut builder = reqwest::blocking::Client::builder().timeout(timeout);
    if let Some(ca) = &tls.certificate {
        let pem = read_pem(ca, "CA certificate")?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("the CA certificate {} is not PEM: {e}", ca.display()))?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let (Some(cert), Some(key)) = (&tls.client_certificate, &tls.client_key) {
        let mut pem = read_pem(cert, "client certificate")?;
        pem.push(b'\n');
        pem.extend(read_pem(key, "client key")?);
        let identity = reqwest::Identity::from_pem(&pem)
            .map_err(|e| format!("the client certificate or key is not usable PEM: {e}"))?;
        builder = builder.identity(identity);
    }
    // A blocking client owns a runtime of its own, which must not be created (or later dropped)
    // on a Tokio worker: build it on a plain thread, as opentelemetry-otlp does for its default.
    std::thread::spawn(move || builder.build())
        .join()
        .map_err(|_| "building the HTTP client panicked".to_owned())?
        .map_err(|e| format!("building the HTTP client failed: {e}"))
}

/// The subscriber's layers: the log lines, the spans (to the SDK, or a no-op tracer that still
/// passes context through), and the log records to OTLP when logs are exported.
fn subscriber_layers(
    fmt_layer: BoxedLayer,
    providers: &Providers,
    config: &TelemetryConfig,
) -> Vec<BoxedLayer> {
    let pipeline_off: String = PIPELINE_CRATES
        .iter()
        .map(|c| format!(",{c}=off"))
        .collect();
    // Spans at info and above; of events only warnings and errors, which mark the span (an
    // error sets its status). Info events are log records already (stderr and OTLP logs, with
    // trace and span ids); copying each onto its span as well doubled their cost for nothing.
    // Code that wants a span event says so with `OpenTelemetrySpanExt::add_event`.
    let span_filter = || {
        EnvFilter::try_new(format!("info{pipeline_off}"))
            .unwrap_or_else(|_| EnvFilter::new("info"))
            .and(tracing_subscriber::filter::filter_fn(|meta| {
                meta.is_span() || *meta.level() <= tracing::Level::WARN
            }))
    };
    let mut layers: Vec<BoxedLayer> = vec![fmt_layer];
    match &providers.tracer {
        // The layer's default extras are off: `code.*` (it would name the telemetry crate's
        // source on every HTTP span), `thread.*` (a worker thread means nothing in async code),
        // `busy_ns`/`idle_ns` (a clock read at every poll) and `target`. They were 8 of the
        // attributes on every span, read by no one, and exported at a cost on every request.
        Some(t) => layers.push(Box::new(
            tracing_opentelemetry::layer()
                .with_tracer(t.tracer(metrics::SCOPE))
                .with_error_records_to_exceptions(true)
                .with_location(false)
                .with_threads(false)
                .with_tracked_inactivity(false)
                .with_target(false)
                .with_filter(span_filter()),
        )),
        // With the SDK disabled the API still passes the caller's context through unchanged, as
        // the specification asks of a no-op implementation.
        // The extras are off here too: the tracked inactivity alone read the clock at every
        // poll of every instrumented future, for spans that are never recorded.
        None => layers.push(Box::new(
            tracing_opentelemetry::layer()
                .with_tracer(opentelemetry::trace::noop::NoopTracer::new())
                .with_location(false)
                .with_threads(false)
                .with_tracked_inactivity(false)
                .with_target(false)
                .with_filter(span_filter()),
        )),
    }
    if let Some(l) = &providers.logger {
        layers.push(Box::new(
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(l)
                .with_filter(log_filter(config, &pipeline_off)),
        ));
    }
    layers
}

/// Logs the configuration's warnings and the signals left out (now that logging is up), and what
/// was started.
fn log_started(config: &TelemetryConfig, skipped: &[String]) {
    for warning in &config.warnings {
        tracing::warn!(target: "telemetry", warning = %warning, "telemetry.config.invalid");
    }
    for reason in skipped {
        tracing::warn!(target: "telemetry", reason = %reason, "telemetry.export.disabled");
    }
    tracing::info!(
        target: "telemetry",
        service_name = %config.service_name,
        traces_exporter = ?config.traces_exporter,
        traces_endpoint = %config.traces_otlp.endpoint,
        traces_protocol = ?config.traces_otlp.protocol,
        sdk_disabled = config.sdk_disabled,
        "telemetry.started"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_file_without_a_pem_block_is_refused_with_its_name() {
        let dir = std::env::temp_dir().join(format!("shopmax-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let not_pem = dir.join("passwd");
        std::fs::write(&not_pem, "root:x:0:0:root:/root:/bin/bash\n").expect("write");
        let pem = dir.join("ca.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let error = read_pem(&not_pem, "CA certificate").expect_err("not PEM");
        assert!(
            error.contains("holds no PEM block") && error.contains("passwd"),
            "{error}"
        );
        assert!(read_pem(&pem, "CA certificate").is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
