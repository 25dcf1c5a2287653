//! Test set-up shared by the ShopMax crates, written once: tests that check telemetry used to
//! build the same runtime, OTLP receiver and `telemetry::init_with` call (or the same in-memory
//! tracer) each in their own way.
//!
//! It is a crate of its own, a dev-dependency only, rather than a feature of `otlp-sink`: the
//! set-up needs `telemetry`, and `otlp-sink` must not, because it is the independent receiver that
//! telemetry's own tests check the exporters against.
//!
//! # Layout
//! - [`TestEnv::start`]: a runtime, an [`OtlpSink`] and telemetry initialised to export every
//!   signal to it with [`FAST`] settings; once per test binary, since telemetry is global.
//! - [`SpanCapture`]: the spans of the current thread, kept in memory, for unit tests that need no
//!   exporter or network.
//! - [`vars`]: owned variable pairs from borrowed names.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{
    InMemorySpanExporter, SdkTracerProvider, SimpleSpanProcessor, SpanData,
};
use otlp_sink::OtlpSink;
use telemetry::{PropagationPolicy, ServiceInfo, TelemetryConfig, TelemetryGuard};
use tokio::runtime::Runtime;
use tracing_subscriber::layer::SubscriberExt as _;

/// Export settings that keep tests from waiting for the 5 s / 60 s defaults.
pub const FAST: &[(&str, &str)] = &[
    ("OTEL_BSP_SCHEDULE_DELAY", "50"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
    ("OTEL_BLRP_SCHEDULE_DELAY", "50"),
    ("RUST_LOG", "info"),
];

/// How long tests wait for exported telemetry to arrive.
pub const WAIT: Duration = Duration::from_secs(10);

/// A process-wide test environment: its own runtime (kept alive for the exporters and the test
/// servers), an OTLP sink, and the initialised telemetry.
#[derive(Debug)]
pub struct TestEnv {
    // Fields drop in order: the guard flushes while the sink and the runtime still run.
    /// Keeps telemetry running; its span statistics are there for tests to read.
    pub guard: TelemetryGuard,
    /// The outbound propagation policy of the configuration, for traced clients.
    pub policy: PropagationPolicy,
    /// The receiver every signal is exported to (unless `vars` send some elsewhere).
    pub sink: OtlpSink,
    /// The runtime the sink, the exporters and the tests' servers run on.
    pub rt: Runtime,
}

impl TestEnv {
    /// Starts a runtime and a sink, then initialises telemetry for `service` with [`FAST`] and
    /// `vars(&sink)` (which win). A configuration warning fails the test: it would mean the test
    /// does not run with the settings it claims.
    pub fn start(
        service: ServiceInfo,
        vars: impl FnOnce(&OtlpSink) -> Vec<(String, String)>,
    ) -> Self {
        Self::start_with(service, None, vars)
    }

    /// Like [`Self::start`], with the sink serving over TLS.
    pub fn start_tls(
        service: ServiceInfo,
        tls: otlp_sink::SinkTls,
        vars: impl FnOnce(&OtlpSink) -> Vec<(String, String)>,
    ) -> Self {
        Self::start_with(service, Some(tls), vars)
    }

    fn start_with(
        service: ServiceInfo,
        tls: Option<otlp_sink::SinkTls>,
        vars: impl FnOnce(&OtlpSink) -> Vec<(String, String)>,
    ) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let sink = rt
            .block_on(async {
                match tls {
                    None => OtlpSink::start().await,
                    Some(tls) => OtlpSink::start_tls(tls).await,
                }
            })
            .expect("sink");
        let mut map: HashMap<String, String> = FAST
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        map.extend(vars(&sink));
        let config = TelemetryConfig::from_lookup(&service, |k| map.get(k).cloned());
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let policy = config.propagation.clone();
        // The gRPC exporter must be built inside the runtime that will drive its connection.
        let guard = {
            let _entered = rt.enter();
            telemetry::init_with(service, config).expect("init")
        };
        Self {
            guard,
            policy,
            sink,
            rt,
        }
    }
}

/// `[("K", value)]` as owned pairs, for [`TestEnv::start`].
pub fn vars(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// Records the `tracing` spans of the current thread as OpenTelemetry spans in memory, until it is
/// dropped. Nothing global is touched, so tests using it run in parallel.
#[derive(Debug)]
pub struct SpanCapture {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
    _default: tracing::subscriber::DefaultGuard,
}

impl SpanCapture {
    /// Starts capturing on this thread.
    pub fn start() -> Self {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(SimpleSpanProcessor::new(exporter.clone()))
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let default = tracing::subscriber::set_default(subscriber);
        Self {
            exporter,
            provider,
            _default: default,
        }
    }

    /// Every span finished so far.
    pub fn finished_spans(&self) -> Vec<SpanData> {
        drop(self.provider.force_flush());
        self.exporter.get_finished_spans().expect("spans")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_capture_sees_the_spans_of_its_thread_with_their_parents() {
        let capture = SpanCapture::start();
        {
            let outer = tracing::info_span!("outer");
            let _outer = outer.enter();
            tracing::info_span!("inner").in_scope(|| {});
        }
        let spans = capture.finished_spans();
        let outer = spans.iter().find(|s| s.name == "outer").expect("outer");
        let inner = spans.iter().find(|s| s.name == "inner").expect("inner");
        assert_eq!(inner.parent_span_id, outer.span_context.span_id());
    }

    #[test]
    fn vars_own_their_pairs() {
        assert_eq!(
            vars(&[("A", "1".to_owned())]),
            vec![("A".to_owned(), "1".to_owned())]
        );
    }
}
