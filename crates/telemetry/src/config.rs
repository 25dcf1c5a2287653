//! Telemetry configuration from the standard OpenTelemetry environment variables.
//!
//! Every variable is read here, once, through a lookup function, so tests can pass a map instead of
//! mutating the process environment. Invalid values never fail start-up: the specification says an
//! SDK must log a warning and fall back to the default, so each fallback is kept in
//! [`TelemetryConfig::warnings`] and logged as soon as logging is up.

use std::time::Duration;

/// Who is emitting telemetry: fixed per binary, unlike everything else here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Default `service.name`; `OTEL_SERVICE_NAME` overrides it.
    pub name: &'static str,
    /// `service.version`, normally `env!("CARGO_PKG_VERSION")`.
    pub version: &'static str,
    /// The site the service runs at (`geo.locality.name`), e.g. "Bangalore".
    pub site: &'static str,
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (default, port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318).
    HttpProtobuf,
    /// OTLP/HTTP with JSON bodies (port 4318).
    HttpJson,
}

impl Protocol {
    fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "grpc" => Some(Self::Grpc),
            "http/protobuf" => Some(Self::HttpProtobuf),
            "http/json" => Some(Self::HttpJson),
            _ => None,
        }
    }
}

/// Where a signal goes (`OTEL_{TRACES,METRICS,LOGS}_EXPORTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExporterKind {
    /// OTLP to a collector.
    Otlp,
    /// Human-readable dump on stdout, for local debugging.
    Console,
    /// Not exported at all.
    None,
}

/// A telemetry signal, used to resolve per-signal variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metrics.
    Metrics,
    /// Log records.
    Logs,
}

impl Signal {
    fn env_infix(self) -> &'static str {
        match self {
            Self::Traces => "TRACES",
            Self::Metrics => "METRICS",
            Self::Logs => "LOGS",
        }
    }

    fn http_path(self) -> &'static str {
        match self {
            Self::Traces => "v1/traces",
            Self::Metrics => "v1/metrics",
            Self::Logs => "v1/logs",
        }
    }
}

/// Resolved OTLP settings for one signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// Full URL: for gRPC the collector address, for HTTP including `/v1/<signal>`.
    pub endpoint: String,
    /// Transport.
    pub protocol: Protocol,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`), values percent-decoded.
    pub headers: Vec<(String, String)>,
    /// Per-export timeout.
    pub timeout: Duration,
    /// Gzip request bodies (`OTEL_EXPORTER_OTLP_COMPRESSION=gzip`).
    pub gzip: bool,
}

/// `OTEL_TRACES_SAMPLER` (+ `_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerConfig {
    /// `always_on`.
    AlwaysOn,
    /// `always_off`.
    AlwaysOff,
    /// `traceidratio` with its ratio.
    TraceIdRatio(f64),
    /// `parentbased_always_on` (the default).
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`.
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio` with its ratio.
    ParentBasedTraceIdRatio(f64),
}

/// Entries of `OTEL_PROPAGATORS` that we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropagatorKind {
    /// W3C Trace Context (`traceparent`, `tracestate`).
    TraceContext,
    /// W3C Baggage.
    Baggage,
}

/// Batch span processor settings (`OTEL_BSP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Delay between two consecutive exports.
    pub schedule_delay: Duration,
    /// Longest an export may take.
    pub export_timeout: Duration,
    /// Spans kept waiting at most; beyond that new spans are dropped and counted.
    pub max_queue_size: usize,
    /// Spans in one export at most.
    pub max_export_batch_size: usize,
}

/// Log output format on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

/// Which trace headers go to which hosts on outbound requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropagationPolicy {
    /// Hosts (`host` or `host:port`) that are ours: they receive traceparent, tracestate and baggage.
    pub internal_hosts: Vec<String>,
    /// Whether hosts outside the list receive `traceparent` (never tracestate or baggage).
    pub trace_headers_to_external: bool,
}

impl PropagationPolicy {
    /// Whether `host` (with its `port`) is on the internal allow-list.
    pub fn is_internal(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.internal_hosts.iter().any(|entry| {
            let entry = entry.trim();
            match entry.rsplit_once(':') {
                // "host:port" entries match one port only; IPv6 literals are written in brackets.
                Some((h, p)) if !h.ends_with(':') && p.parse::<u16>().is_ok() => {
                    h.trim_start_matches('[')
                        .trim_end_matches(']')
                        .eq_ignore_ascii_case(host)
                        && port == p.parse().ok()
                }
                _ => entry
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .eq_ignore_ascii_case(host),
            }
        })
    }
}

/// Everything [`crate::init`] needs, resolved from the environment.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `OTEL_SDK_DISABLED=true`: no providers at all, local logging only.
    pub sdk_disabled: bool,
    /// `service.name`.
    pub service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`, decoded, in order.
    pub resource_attributes: Vec<(String, String)>,
    /// Trace exporter.
    pub traces_exporter: ExporterKind,
    /// Metric exporter.
    pub metrics_exporter: ExporterKind,
    /// Log exporter.
    pub logs_exporter: ExporterKind,
    /// OTLP settings for traces.
    pub traces_otlp: OtlpConfig,
    /// OTLP settings for metrics.
    pub metrics_otlp: OtlpConfig,
    /// OTLP settings for logs.
    pub logs_otlp: OtlpConfig,
    /// Sampler.
    pub sampler: SamplerConfig,
    /// Propagators, in order.
    pub propagators: Vec<PropagatorKind>,
    /// Span batching.
    pub batch: BatchConfig,
    /// `OTEL_METRIC_EXPORT_INTERVAL`.
    pub metric_export_interval: Duration,
    /// `OTEL_METRIC_EXPORT_TIMEOUT`.
    pub metric_export_timeout: Duration,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `RUST_LOG` directives.
    pub log_filter: String,
    /// Outbound header policy (`TELEMETRY_INTERNAL_HOSTS`, `TELEMETRY_PROPAGATE_TO_EXTERNAL`).
    pub propagation: PropagationPolicy,
    /// Baggage keys copied onto spans (`TELEMETRY_BAGGAGE_SPAN_ATTRIBUTES`).
    pub baggage_span_attributes: Vec<String>,
    /// How long shutdown may take in all (`TELEMETRY_SHUTDOWN_TIMEOUT`, ms).
    pub shutdown_timeout: Duration,
    /// Invalid settings that fell back to defaults, to be logged once logging is up.
    pub warnings: Vec<String>,
}

/// Baggage keys copied onto spans unless configured otherwise.
pub const DEFAULT_BAGGAGE_SPAN_ATTRIBUTES: &[&str] = &["session.id", "user.id", "shopmax.channel"];

impl TelemetryConfig {
    /// Reads the process environment.
    pub fn from_env(service: &ServiceInfo) -> Self {
        Self::from_lookup(service, |key| std::env::var(key).ok())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(service: &ServiceInfo, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut r = Reader {
            lookup: &lookup,
            warnings: Vec::new(),
        };

        let sdk_disabled = r.bool("OTEL_SDK_DISABLED", false);
        let service_name = r
            .non_empty("OTEL_SERVICE_NAME")
            .unwrap_or_else(|| service.name.to_owned());
        let resource_attributes = match r.non_empty("OTEL_RESOURCE_ATTRIBUTES") {
            Some(raw) => match parse_key_value_list(&raw) {
                Ok(list) => list,
                Err(bad) => {
                    // The spec: on any error, discard the whole variable.
                    r.warn(format!(
                        "OTEL_RESOURCE_ATTRIBUTES: invalid entry {bad:?}; ignoring the variable"
                    ));
                    Vec::new()
                }
            },
            None => Vec::new(),
        };

        let traces_exporter = r.exporter("OTEL_TRACES_EXPORTER");
        let metrics_exporter = r.exporter("OTEL_METRICS_EXPORTER");
        let logs_exporter = r.exporter("OTEL_LOGS_EXPORTER");
        let traces_otlp = r.otlp(Signal::Traces);
        let metrics_otlp = r.otlp(Signal::Metrics);
        let logs_otlp = r.otlp(Signal::Logs);
        let sampler = r.sampler();
        let propagators = r.propagators();

        let batch = BatchConfig {
            schedule_delay: r.millis("OTEL_BSP_SCHEDULE_DELAY", 5000),
            export_timeout: r.millis("OTEL_BSP_EXPORT_TIMEOUT", 30000),
            max_queue_size: r.count("OTEL_BSP_MAX_QUEUE_SIZE", 2048),
            max_export_batch_size: r.count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
        };
        let mut batch = batch;
        if batch.max_export_batch_size > batch.max_queue_size {
            // The spec requires batch size <= queue size.
            r.warn(format!(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE ({}) exceeds OTEL_BSP_MAX_QUEUE_SIZE ({}); using the queue size",
                batch.max_export_batch_size, batch.max_queue_size
            ));
            batch.max_export_batch_size = batch.max_queue_size;
        }

        let metric_export_interval = r.millis("OTEL_METRIC_EXPORT_INTERVAL", 60000);
        let metric_export_timeout = r.millis("OTEL_METRIC_EXPORT_TIMEOUT", 30000);

        let log_format = match r.non_empty("LOG_FORMAT").as_deref() {
            None | Some("human") | Some("text") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => {
                r.warn(format!(
                    "LOG_FORMAT={other:?} is not human or json; using human"
                ));
                LogFormat::Human
            }
        };
        let log_filter = r.non_empty("RUST_LOG").unwrap_or_else(|| "info".to_owned());

        let propagation = PropagationPolicy {
            internal_hosts: r
                .non_empty("TELEMETRY_INTERNAL_HOSTS")
                .map(|v| split_list(&v))
                .unwrap_or_else(|| vec!["localhost".to_owned(), "127.0.0.1".to_owned()]),
            trace_headers_to_external: r.bool("TELEMETRY_PROPAGATE_TO_EXTERNAL", false),
        };
        let baggage_span_attributes = r
            .non_empty("TELEMETRY_BAGGAGE_SPAN_ATTRIBUTES")
            .map(|v| split_list(&v))
            .unwrap_or_else(|| {
                DEFAULT_BAGGAGE_SPAN_ATTRIBUTES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            });
        let shutdown_timeout = r.millis("TELEMETRY_SHUTDOWN_TIMEOUT", 5000);

        Self {
            sdk_disabled,
            service_name,
            resource_attributes,
            traces_exporter,
            metrics_exporter,
            logs_exporter,
            traces_otlp,
            metrics_otlp,
            logs_otlp,
            sampler,
            propagators,
            batch,
            metric_export_interval,
            metric_export_timeout,
            log_format,
            log_filter,
            propagation,
            baggage_span_attributes,
            shutdown_timeout,
            warnings: r.warnings,
        }
    }
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses `key1=value1,key2=value2` as used by `OTEL_RESOURCE_ATTRIBUTES` and
/// `OTEL_EXPORTER_OTLP_HEADERS`: values are percent-decoded; the first bad entry is returned as the
/// error because the spec asks to discard the whole value then.
pub(crate) fn parse_key_value_list(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for entry in raw.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            return Err(entry.to_owned());
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(entry.to_owned());
        }
        let value = percent_encoding::percent_decode_str(value.trim())
            .decode_utf8()
            .map_err(|_| entry.to_owned())?;
        out.push((key.to_owned(), value.into_owned()));
    }
    Ok(out)
}

struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    warnings: Vec<String>,
}

impl Reader<'_> {
    fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    /// Empty values count as unset, as the spec requires.
    fn non_empty(&self, key: &str) -> Option<String> {
        (self.lookup)(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn bool(&mut self, key: &str, default: bool) -> bool {
        match self.non_empty(key) {
            None => default,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                self.warn(format!("{key}={v:?} is not true or false; using {default}"));
                default
            }
        }
    }

    fn millis(&mut self, key: &str, default_ms: u64) -> Duration {
        match self.non_empty(key) {
            None => Duration::from_millis(default_ms),
            Some(v) => match v.parse::<u64>() {
                Ok(ms) => Duration::from_millis(ms),
                Err(_) => {
                    self.warn(format!(
                        "{key}={v:?} is not a whole number of milliseconds; using {default_ms}"
                    ));
                    Duration::from_millis(default_ms)
                }
            },
        }
    }

    fn count(&mut self, key: &str, default: usize) -> usize {
        match self.non_empty(key) {
            None => default,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    self.warn(format!(
                        "{key}={v:?} is not a positive integer; using {default}"
                    ));
                    default
                }
            },
        }
    }

    fn exporter(&mut self, key: &str) -> ExporterKind {
        let Some(value) = self.non_empty(key) else {
            return ExporterKind::Otlp;
        };
        // The spec allows a comma-separated list; we support one exporter per signal, the first.
        let first = value.split(',').next().unwrap_or_default().trim();
        match first {
            "otlp" => ExporterKind::Otlp,
            "console" => ExporterKind::Console,
            "none" => ExporterKind::None,
            other => {
                self.warn(format!(
                    "{key}={other:?} is not supported (otlp, console, none); using otlp"
                ));
                ExporterKind::Otlp
            }
        }
    }

    fn otlp(&mut self, signal: Signal) -> OtlpConfig {
        let infix = signal.env_infix();
        let protocol_key = format!("OTEL_EXPORTER_OTLP_{infix}_PROTOCOL");
        let protocol = match self
            .non_empty(&protocol_key)
            .map(|v| (protocol_key.clone(), v))
            .or_else(|| {
                self.non_empty("OTEL_EXPORTER_OTLP_PROTOCOL")
                    .map(|v| ("OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(), v))
            }) {
            None => Protocol::Grpc,
            Some((key, v)) => Protocol::parse(&v).unwrap_or_else(|| {
                self.warn(format!(
                    "{key}={v:?} is not grpc, http/protobuf or http/json; using grpc"
                ));
                Protocol::Grpc
            }),
        };

        let endpoint =
            if let Some(url) = self.non_empty(&format!("OTEL_EXPORTER_OTLP_{infix}_ENDPOINT")) {
                // Per-signal endpoints are used as-is, path included.
                url
            } else if let Some(base) = self.non_empty("OTEL_EXPORTER_OTLP_ENDPOINT") {
                match protocol {
                    Protocol::Grpc => base,
                    // The base endpoint gets the signal path appended, relative to any path it has.
                    _ => format!("{}/{}", base.trim_end_matches('/'), signal.http_path()),
                }
            } else {
                match protocol {
                    Protocol::Grpc => "http://localhost:4317".to_owned(),
                    _ => format!("http://localhost:4318/{}", signal.http_path()),
                }
            };

        let mut headers = Vec::new();
        for key in [
            "OTEL_EXPORTER_OTLP_HEADERS".to_owned(),
            format!("OTEL_EXPORTER_OTLP_{infix}_HEADERS"),
        ] {
            if let Some(raw) = self.non_empty(&key) {
                match parse_key_value_list(&raw) {
                    Ok(list) => {
                        for (k, v) in list {
                            // Per-signal headers come second and replace same-named general ones.
                            headers.retain(|(existing, _): &(String, String)| {
                                !existing.eq_ignore_ascii_case(&k)
                            });
                            headers.push((k.to_ascii_lowercase(), v));
                        }
                    }
                    // Header values may be secrets: name the variable, never echo the value.
                    Err(_) => self.warn(format!("{key} is malformed; ignoring it")),
                }
            }
        }

        let timeout_key = format!("OTEL_EXPORTER_OTLP_{infix}_TIMEOUT");
        let timeout = if self.non_empty(&timeout_key).is_some() {
            self.millis(&timeout_key, 10000)
        } else {
            self.millis("OTEL_EXPORTER_OTLP_TIMEOUT", 10000)
        };

        let compression_key = format!("OTEL_EXPORTER_OTLP_{infix}_COMPRESSION");
        let compression = self
            .non_empty(&compression_key)
            .map(|v| (compression_key, v))
            .or_else(|| {
                self.non_empty("OTEL_EXPORTER_OTLP_COMPRESSION")
                    .map(|v| ("OTEL_EXPORTER_OTLP_COMPRESSION".to_owned(), v))
            });
        let gzip = match compression {
            None => false,
            Some((_, v)) if v == "gzip" => true,
            Some((_, v)) if v == "none" => false,
            Some((key, v)) => {
                self.warn(format!(
                    "{key}={v:?} is not gzip or none; sending uncompressed"
                ));
                false
            }
        };

        OtlpConfig {
            endpoint,
            protocol,
            headers,
            timeout,
            gzip,
        }
    }

    fn sampler(&mut self) -> SamplerConfig {
        let name = self.non_empty("OTEL_TRACES_SAMPLER");
        let arg = self.non_empty("OTEL_TRACES_SAMPLER_ARG");
        let ratio = |s: &mut Self| -> f64 {
            match arg.as_deref().map(str::parse::<f64>) {
                None => 1.0,
                Some(Ok(r)) if (0.0..=1.0).contains(&r) => r,
                Some(_) => {
                    s.warn(format!(
                        "OTEL_TRACES_SAMPLER_ARG={:?} is not a ratio in [0, 1]; using 1.0",
                        arg.as_deref().unwrap_or_default()
                    ));
                    1.0
                }
            }
        };
        match name.as_deref() {
            None | Some("parentbased_always_on") => SamplerConfig::ParentBasedAlwaysOn,
            Some("always_on") => SamplerConfig::AlwaysOn,
            Some("always_off") => SamplerConfig::AlwaysOff,
            Some("traceidratio") => SamplerConfig::TraceIdRatio(ratio(self)),
            Some("parentbased_always_off") => SamplerConfig::ParentBasedAlwaysOff,
            Some("parentbased_traceidratio") => SamplerConfig::ParentBasedTraceIdRatio(ratio(self)),
            Some(other) => {
                self.warn(format!(
                    "OTEL_TRACES_SAMPLER={other:?} is not supported; using parentbased_always_on"
                ));
                SamplerConfig::ParentBasedAlwaysOn
            }
        }
    }

    fn propagators(&mut self) -> Vec<PropagatorKind> {
        let Some(value) = self.non_empty("OTEL_PROPAGATORS") else {
            return vec![PropagatorKind::TraceContext, PropagatorKind::Baggage];
        };
        let mut out = Vec::new();
        for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let kind = match name {
                "tracecontext" => PropagatorKind::TraceContext,
                "baggage" => PropagatorKind::Baggage,
                "none" => return Vec::new(),
                other => {
                    self.warn(format!(
                        "OTEL_PROPAGATORS: {other:?} is not supported; skipped"
                    ));
                    continue;
                }
            };
            if !out.contains(&kind) {
                out.push(kind);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::collections::HashMap;

    const SVC: ServiceInfo = ServiceInfo {
        name: "chatbot",
        version: "1.2.3",
        site: "Bangalore",
    };

    fn config(vars: &[(&str, &str)]) -> TelemetryConfig {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TelemetryConfig::from_lookup(&SVC, |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_issue_and_spec() {
        let c = config(&[]);
        assert!(!c.sdk_disabled);
        assert_eq!(c.service_name, "chatbot");
        assert_eq!(c.traces_otlp.protocol, Protocol::Grpc);
        assert_eq!(c.traces_otlp.endpoint, "http://localhost:4317");
        assert_eq!(c.traces_otlp.timeout, Duration::from_secs(10));
        assert_eq!(c.sampler, SamplerConfig::ParentBasedAlwaysOn);
        assert_eq!(
            c.propagators,
            vec![PropagatorKind::TraceContext, PropagatorKind::Baggage]
        );
        assert_eq!(c.batch.max_queue_size, 2048);
        assert_eq!(c.batch.max_export_batch_size, 512);
        assert_eq!(c.batch.schedule_delay, Duration::from_millis(5000));
        assert_eq!(c.batch.export_timeout, Duration::from_millis(30000));
        assert!(c.warnings.is_empty());
    }

    #[rstest]
    #[case::grpc_base(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")], Signal::Traces, "http://collector:4317")]
    #[case::http_default(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")], Signal::Traces, "http://localhost:4318/v1/traces")]
    #[case::http_base_appends_path(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")], Signal::Metrics, "http://c:4318/v1/metrics")]
    #[case::http_base_with_path(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/otlp/")], Signal::Logs, "http://c:4318/otlp/v1/logs")]
    #[case::signal_endpoint_as_is(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:9999/custom")], Signal::Traces, "http://t:9999/custom")]
    #[case::signal_protocol_wins(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf")], Signal::Logs, "http://localhost:4318/v1/logs")]
    fn endpoints_resolve_per_spec(
        #[case] vars: &[(&str, &str)],
        #[case] signal: Signal,
        #[case] expected: &str,
    ) {
        let c = config(vars);
        let otlp = match signal {
            Signal::Traces => c.traces_otlp,
            Signal::Metrics => c.metrics_otlp,
            Signal::Logs => c.logs_otlp,
        };
        assert_eq!(otlp.endpoint, expected);
    }

    #[test]
    fn compression_is_gzip_or_none_per_signal() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "none"),
        ]);
        assert!(c.traces_otlp.gzip && c.metrics_otlp.gzip && !c.logs_otlp.gzip);
        let c = config(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli")]);
        assert!(!c.traces_otlp.gzip);
        assert_eq!(c.warnings.len(), 3);
    }

    #[test]
    fn headers_are_decoded_and_signal_headers_override() {
        let c = config(&[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "api-key=a%20b,x-tenant=shopmax",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "X-Tenant=traces"),
        ]);
        assert_eq!(
            c.traces_otlp.headers,
            vec![
                ("api-key".to_owned(), "a b".to_owned()),
                ("x-tenant".to_owned(), "traces".to_owned())
            ]
        );
        assert_eq!(c.metrics_otlp.headers[1].1, "shopmax");
    }

    #[test]
    fn malformed_headers_warn_without_echoing_secret() {
        let c = config(&[("OTEL_EXPORTER_OTLP_HEADERS", "secret-token-no-equals")]);
        assert!(c.traces_otlp.headers.is_empty());
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("OTEL_EXPORTER_OTLP_HEADERS"))
        );
        assert!(!c.warnings.iter().any(|w| w.contains("secret-token")));
    }

    #[rstest]
    #[case("always_on", None, SamplerConfig::AlwaysOn)]
    #[case("always_off", None, SamplerConfig::AlwaysOff)]
    #[case("traceidratio", Some("0.25"), SamplerConfig::TraceIdRatio(0.25))]
    #[case("traceidratio", Some("7"), SamplerConfig::TraceIdRatio(1.0))]
    #[case("parentbased_always_off", None, SamplerConfig::ParentBasedAlwaysOff)]
    #[case(
        "parentbased_traceidratio",
        Some("0.5"),
        SamplerConfig::ParentBasedTraceIdRatio(0.5)
    )]
    #[case("jaeger_remote", None, SamplerConfig::ParentBasedAlwaysOn)]
    fn sampler_from_env(
        #[case] name: &str,
        #[case] arg: Option<&str>,
        #[case] expected: SamplerConfig,
    ) {
        let mut vars = vec![("OTEL_TRACES_SAMPLER", name)];
        if let Some(arg) = arg {
            vars.push(("OTEL_TRACES_SAMPLER_ARG", arg));
        }
        assert_eq!(config(&vars).sampler, expected);
    }

    #[rstest]
    #[case("tracecontext", vec![PropagatorKind::TraceContext])]
    #[case("baggage,tracecontext", vec![PropagatorKind::Baggage, PropagatorKind::TraceContext])]
    #[case("none", vec![])]
    #[case("b3, tracecontext", vec![PropagatorKind::TraceContext])]
    fn propagators_from_env(#[case] value: &str, #[case] expected: Vec<PropagatorKind>) {
        assert_eq!(config(&[("OTEL_PROPAGATORS", value)]).propagators, expected);
    }

    #[test]
    fn invalid_values_fall_back_with_a_warning() {
        let c = config(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "lots"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
            ("OTEL_SDK_DISABLED", "yes"),
            ("OTEL_TRACES_EXPORTER", "zipkin"),
        ]);
        assert_eq!(c.batch.max_queue_size, 2048);
        assert_eq!(c.traces_otlp.protocol, Protocol::Grpc);
        assert!(!c.sdk_disabled);
        assert_eq!(c.traces_exporter, ExporterKind::Otlp);
        assert_eq!(c.warnings.len(), 4 + 2, "{:?}", c.warnings);
    }

    #[test]
    fn resource_attributes_are_decoded_and_a_bad_entry_discards_all() {
        let c = config(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=prod,team=a%2Cb",
        )]);
        assert_eq!(
            c.resource_attributes,
            vec![
                ("deployment.environment.name".to_owned(), "prod".to_owned()),
                ("team".to_owned(), "a,b".to_owned())
            ]
        );
        let c = config(&[("OTEL_RESOURCE_ATTRIBUTES", "a=1,broken")]);
        assert!(c.resource_attributes.is_empty());
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn service_name_env_overrides_default() {
        assert_eq!(
            config(&[("OTEL_SERVICE_NAME", "bot-2")]).service_name,
            "bot-2"
        );
    }

    #[rstest]
    #[case("fraud,recommendation:8081", "fraud", Some(8082), true)]
    #[case("fraud,recommendation:8081", "recommendation", Some(8081), true)]
    #[case("fraud,recommendation:8081", "recommendation", Some(9000), false)]
    #[case("fraud", "api.openai.com", Some(443), false)]
    #[case("[::1]", "[::1]", Some(80), true)]
    #[case("FRAUD", "fraud", None, true)]
    fn internal_host_matching(
        #[case] list: &str,
        #[case] host: &str,
        #[case] port: Option<u16>,
        #[case] expected: bool,
    ) {
        let c = config(&[("TELEMETRY_INTERNAL_HOSTS", list)]);
        assert_eq!(c.propagation.is_internal(host, port), expected);
    }
}
