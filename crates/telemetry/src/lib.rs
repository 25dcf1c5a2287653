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
//! - `logging`: stderr log lines with trace and span ids.

mod baggage_attributes;
mod batch;
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
pub use client::{
    RequestOptions, TracedClient, TracedRequestBuilder, error_type as client_error_type,
};
pub use config::{
    BatchConfig, ExporterKind, LogFormat, OtlpConfig, PropagationPolicy, PropagatorKind, Protocol,
    SamplerConfig, ServiceInfo, TelemetryConfig,
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

/// Why [`init`] failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// An OTLP exporter could not be built from the configuration.
    #[error("building the OTLP {signal} exporter failed: {source}")]
    Exporter {
        /// traces, metrics or logs.
        signal: &'static str,
        /// The exporter's error.
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// OTLP/gRPC needs a Tokio runtime to drive its connection and none was running.
    #[error("OTLP over gRPC needs a Tokio runtime: call init from inside one")]
    NoRuntime,
    /// A global tracing subscriber was already installed.
    #[error("a global tracing subscriber is already installed: {0}")]
    Subscriber(String),
    /// A log filter directive could not be parsed.
    #[error("invalid log filter: {0}")]
    Filter(String),
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
    let stats = Arc::new(SpanPipelineStats::default());
    let fmt_layer = fmt_layer(&config)?;
    let providers = if config.sdk_disabled {
        Providers::default()
    } else {
        Providers::build(&service, &config, &stats)?
    };
    providers.install_globally(&stats);
    let layers = subscriber_layers(fmt_layer, &providers, &config)?;
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .map_err(|e| InitError::Subscriber(e.to_string()))?;
    log_started(&config);

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

/// The stderr log lines, filtered by `RUST_LOG`.
fn fmt_layer(config: &TelemetryConfig) -> Result<BoxedLayer, InitError> {
    let log_filter =
        EnvFilter::try_new(&config.log_filter).map_err(|e| InitError::Filter(e.to_string()))?;
    let ansi = std::io::stderr().is_terminal() && config.log_format == LogFormat::Human;
    Ok(Box::new(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .fmt_fields(logging::NoSpanFields)
            .event_format(logging::EventFormat::new(config.log_format, ansi))
            .with_filter(log_filter),
    ))
}

/// The SDK providers; all absent with `OTEL_SDK_DISABLED=true`.
#[derive(Default)]
struct Providers {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    logger: Option<SdkLoggerProvider>,
}

impl Providers {
    /// Traces, then metrics, then logs; the first exporter that cannot be built is the error.
    fn build(
        service: &ServiceInfo,
        config: &TelemetryConfig,
        stats: &Arc<SpanPipelineStats>,
    ) -> Result<Self, InitError> {
        let resource = resource::build(service, config);
        Ok(Self {
            tracer: Some(tracer_provider(resource.clone(), config, stats)?),
            meter: meter_provider(resource.clone(), config)?,
            logger: logger_provider(resource, config)?,
        })
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

fn tracer_provider(
    resource: Resource,
    config: &TelemetryConfig,
    stats: &Arc<SpanPipelineStats>,
) -> Result<SdkTracerProvider, InitError> {
    // The provider exists even with OTEL_TRACES_EXPORTER=none: spans are still made and
    // context still propagates with our span ids; only export is off.
    let export = match config.traces_exporter {
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
    };
    // One processor: the baggage copier wraps the exporting one (see its docs for why).
    let builder = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler(&config.sampler))
        .with_id_generator(RandomIdGenerator::default())
        .with_span_processor(baggage_attributes::BaggageSpanProcessor::new(
            config.baggage_span_attributes.clone(),
            export,
        ));
    Ok(builder.build())
}

fn meter_provider(
    resource: Resource,
    config: &TelemetryConfig,
) -> Result<Option<SdkMeterProvider>, InitError> {
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
) -> Result<Option<SdkLoggerProvider>, InitError> {
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
// function; what they share (endpoint, timeout, headers, compression) is in `grpc` and `http`.

fn span_exporter(
    otlp: &OtlpConfig,
    timeout: Duration,
) -> Result<opentelemetry_otlp::SpanExporter, InitError> {
    use opentelemetry_otlp::SpanExporter as E;
    match otlp.protocol {
        Protocol::Grpc => grpc(E::builder().with_tonic(), otlp, timeout)?.build(),
        Protocol::HttpProtobuf | Protocol::HttpJson => {
            http(E::builder().with_http(), otlp, timeout).build()
        }
    }
    .map_err(exporter_error("traces"))
}

fn metric_exporter(
    otlp: &OtlpConfig,
    timeout: Duration,
) -> Result<opentelemetry_otlp::MetricExporter, InitError> {
    use opentelemetry_otlp::MetricExporter as E;
    match otlp.protocol {
        Protocol::Grpc => grpc(E::builder().with_tonic(), otlp, timeout)?.build(),
        Protocol::HttpProtobuf | Protocol::HttpJson => {
            http(E::builder().with_http(), otlp, timeout).build()
        }
    }
    .map_err(exporter_error("metrics"))
}

fn log_exporter(
    otlp: &OtlpConfig,
    timeout: Duration,
) -> Result<opentelemetry_otlp::LogExporter, InitError> {
    use opentelemetry_otlp::LogExporter as E;
    match otlp.protocol {
        Protocol::Grpc => grpc(E::builder().with_tonic(), otlp, timeout)?.build(),
        Protocol::HttpProtobuf | Protocol::HttpJson => {
            http(E::builder().with_http(), otlp, timeout).build()
        }
    }
    .map_err(exporter_error("logs"))
}

fn exporter_error(
    signal: &'static str,
) -> impl FnOnce(opentelemetry_otlp::ExporterBuildError) -> InitError {
    move |source| InitError::Exporter { signal, source }
}

/// OTLP/gRPC settings of any exporter builder: headers become metadata (entries that are not
/// valid metadata are skipped).
fn grpc<B: WithExportConfig + WithTonicConfig>(
    builder: B,
    otlp: &OtlpConfig,
    timeout: Duration,
) -> Result<B, InitError> {
    // The exporter needs a runtime to drive its connection; without one it would fail later.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(InitError::NoRuntime);
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
    let builder = builder
        .with_endpoint(otlp.endpoint.clone())
        .with_timeout(timeout)
        .with_metadata(metadata);
    Ok(if otlp.gzip {
        builder.with_compression(opentelemetry_otlp::Compression::Gzip)
    } else {
        builder
    })
}

/// OTLP/HTTP settings of any exporter builder, protobuf or JSON bodies.
fn http<B: WithExportConfig + WithHttpConfig>(
    builder: B,
    otlp: &OtlpConfig,
    timeout: Duration,
) -> B {
    let builder = builder
        .with_protocol(if otlp.protocol == Protocol::HttpJson {
            opentelemetry_otlp::Protocol::HttpJson
        } else {
            opentelemetry_otlp::Protocol::HttpBinary
        })
        .with_endpoint(otlp.endpoint.clone())
        .with_timeout(timeout)
        .with_headers(otlp.headers.iter().cloned().collect::<HashMap<_, _>>());
    if otlp.gzip {
        builder.with_compression(opentelemetry_otlp::Compression::Gzip)
    } else {
        builder
    }
}

/// The subscriber's layers: the log lines, the spans (to the SDK, or a no-op tracer that still
/// passes context through), and the log records to OTLP when logs are exported.
fn subscriber_layers(
    fmt_layer: BoxedLayer,
    providers: &Providers,
    config: &TelemetryConfig,
) -> Result<Vec<BoxedLayer>, InitError> {
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
        None => layers.push(Box::new(
            tracing_opentelemetry::layer()
                .with_tracer(opentelemetry::trace::noop::NoopTracer::new())
                .with_filter(span_filter()),
        )),
    }
    if let Some(l) = &providers.logger {
        let filter = EnvFilter::try_new(format!("{}{pipeline_off}", config.log_filter))
            .map_err(|e| InitError::Filter(e.to_string()))?;
        layers.push(Box::new(
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(l)
                .with_filter(filter),
        ));
    }
    Ok(layers)
}

/// Logs the configuration's warnings (now that logging is up) and what was started.
fn log_started(config: &TelemetryConfig) {
    for warning in &config.warnings {
        tracing::warn!(target: "telemetry", warning = %warning, "telemetry.config.invalid");
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
