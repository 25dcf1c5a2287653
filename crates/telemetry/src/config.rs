//! Telemetry configuration from the standard OpenTelemetry environment variables.
//!
//! Every variable is read here, once, through the shared [`env_config::Reader`] in its lenient
//! mode, so tests can pass a map instead of mutating the process environment. Invalid values never
//! fail start-up: the specification says an SDK must log a warning and fall back to the default, so
//! each fallback is kept in [`TelemetryConfig::warnings`] and logged as soon as logging is up. What
//! is specific to OpenTelemetry (exporters, per-signal OTLP resolution, sampler, propagators) is
//! parsed by the functions at the end of this file.

use std::time::Duration;

use env_config::Reader;

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
pub(crate) enum Signal {
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
#[derive(Clone, PartialEq, Eq)]
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
    /// PEM files for TLS to the collector.
    pub tls: TlsFiles,
}

/// PEM files for TLS to the collector: `OTEL_EXPORTER_OTLP_CERTIFICATE` (a CA to trust besides
/// the system's), `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and `OTEL_EXPORTER_OTLP_CLIENT_KEY` (for
/// mutual TLS), each with its per-signal variant. They are read when the exporter is built; one
/// that cannot be read turns that signal's export off with a warning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate(s) to trust, PEM.
    pub certificate: Option<std::path::PathBuf>,
    /// Client certificate chain, PEM.
    pub client_certificate: Option<std::path::PathBuf>,
    /// Client private key, PEM.
    pub client_key: Option<std::path::PathBuf>,
}

impl TlsFiles {
    /// Whether any file is set.
    pub fn any(&self) -> bool {
        self.certificate.is_some() || self.client_certificate.is_some() || self.client_key.is_some()
    }
}

impl std::fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values are often API keys: show which headers are sent, never what they hold.
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, _)| (name.as_str(), "***"))
            .collect();
        f.debug_struct("OtlpConfig")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .field("gzip", &self.gzip)
            .field("tls", &self.tls)
            .finish()
    }
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
    /// Proxies whose `Forwarded` / `X-Forwarded-For` are believed (`TELEMETRY_TRUSTED_PROXIES`:
    /// networks or addresses; none by default).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The header those proxies write (`TELEMETRY_FORWARDED_HEADER`, `x-forwarded-for`).
    pub forwarded_header: crate::ForwardedHeader,
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
pub(crate) const DEFAULT_BAGGAGE_SPAN_ATTRIBUTES: &[&str] =
    &["session.id", "user.id", "shopmax.channel"];

impl TelemetryConfig {
    /// Reads the process environment.
    pub fn from_env(service: &ServiceInfo) -> Self {
        Self::from_lookup(service, env_config::process())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(service: &ServiceInfo, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut r = Reader::new(&lookup);

        let sdk_disabled = r.bool_or("OTEL_SDK_DISABLED", false);
        let service_name = r.string_or("OTEL_SERVICE_NAME", service.name);
        let resource_attributes = match r.get("OTEL_RESOURCE_ATTRIBUTES") {
            Some(raw) => match parse_key_value_list(&raw) {
                Ok(list) => list,
                Err(bad) => {
                    // The spec: on any error, discard the whole variable.
                    r.reject(
                        "OTEL_RESOURCE_ATTRIBUTES",
                        format!("invalid entry {bad:?}; ignoring the variable"),
                        None,
                    );
                    Vec::new()
                }
            },
            None => Vec::new(),
        };

        let traces_exporter = exporter(&mut r, "OTEL_TRACES_EXPORTER");
        let metrics_exporter = exporter(&mut r, "OTEL_METRICS_EXPORTER");
        let logs_exporter = exporter(&mut r, "OTEL_LOGS_EXPORTER");
        let traces_otlp = otlp(&mut r, Signal::Traces);
        let metrics_otlp = otlp(&mut r, Signal::Metrics);
        let logs_otlp = otlp(&mut r, Signal::Logs);
        let sampler = sampler(&mut r);
        let propagators = propagators(&mut r);

        let mut batch = BatchConfig {
            schedule_delay: r.millis_or("OTEL_BSP_SCHEDULE_DELAY", 5000),
            export_timeout: r.millis_or("OTEL_BSP_EXPORT_TIMEOUT", 30000),
            max_queue_size: r.positive_or("OTEL_BSP_MAX_QUEUE_SIZE", 2048),
            max_export_batch_size: r.positive_or("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
        };
        if batch.max_export_batch_size > batch.max_queue_size {
            // The spec requires batch size <= queue size.
            r.reject(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                format!(
                    "{} exceeds OTEL_BSP_MAX_QUEUE_SIZE ({})",
                    batch.max_export_batch_size, batch.max_queue_size
                ),
                Some(batch.max_queue_size.to_string()),
            );
            batch.max_export_batch_size = batch.max_queue_size;
        }

        let metric_export_interval = r.millis_or("OTEL_METRIC_EXPORT_INTERVAL", 60000);
        let metric_export_timeout = r.millis_or("OTEL_METRIC_EXPORT_TIMEOUT", 30000);

        let log_format = match r.get("LOG_FORMAT").as_deref() {
            None | Some("human" | "text") => LogFormat::Human,
            Some("json") => LogFormat::Json,
            Some(other) => {
                r.reject(
                    "LOG_FORMAT",
                    format!("{other:?} is not human or json"),
                    Some("human".to_owned()),
                );
                LogFormat::Human
            }
        };
        let mut log_filter = r.string_or("RUST_LOG", "info");
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&log_filter) {
            // A typo in RUST_LOG must not stop the service: it logs at info and says why.
            r.reject(
                "RUST_LOG",
                format!("invalid filter: {error}"),
                Some("info".to_owned()),
            );
            log_filter = "info".to_owned();
        }

        let trusted_proxies = crate::read_networks(&mut r, "TELEMETRY_TRUSTED_PROXIES");

        let forwarded_header = match r.get("TELEMETRY_FORWARDED_HEADER") {
            None => crate::ForwardedHeader::default(),
            Some(v) => crate::ForwardedHeader::parse(&v).unwrap_or_else(|| {
                r.reject(
                    "TELEMETRY_FORWARDED_HEADER",
                    format!("{v:?} is not x-forwarded-for or forwarded"),
                    Some("x-forwarded-for".to_owned()),
                );
                crate::ForwardedHeader::default()
            }),
        };

        let propagation = PropagationPolicy {
            internal_hosts: r
                .list("TELEMETRY_INTERNAL_HOSTS")
                .unwrap_or_else(|| vec!["localhost".to_owned(), "127.0.0.1".to_owned()]),
            trace_headers_to_external: r.bool_or("TELEMETRY_PROPAGATE_TO_EXTERNAL", false),
        };
        let baggage_span_attributes =
            r.list("TELEMETRY_BAGGAGE_SPAN_ATTRIBUTES")
                .unwrap_or_else(|| {
                    DEFAULT_BAGGAGE_SPAN_ATTRIBUTES
                        .iter()
                        .map(|s| (*s).to_owned())
                        .collect()
                });
        let shutdown_timeout = r.millis_or("TELEMETRY_SHUTDOWN_TIMEOUT", 5000);

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
            trusted_proxies,
            forwarded_header,
            propagation,
            baggage_span_attributes,
            shutdown_timeout,
            // Lenient: an invalid OTEL_* value must never stop a service from starting.
            // A general variable read for each of the three signals warns once, not three times.
            warnings: {
                let mut seen = std::collections::HashSet::new();
                r.into_warnings()
                    .into_iter()
                    .filter(|w| seen.insert(w.clone()))
                    .collect()
            },
        }
    }
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

/// `OTEL_{TRACES,METRICS,LOGS}_EXPORTER`; OTLP when unset or unsupported.
fn exporter(r: &mut Reader<'_>, key: &str) -> ExporterKind {
    let Some(value) = r.get(key) else {
        return ExporterKind::Otlp;
    };
    // The spec allows a comma-separated list; we support one exporter per signal, the first.
    let first = value.split(',').next().unwrap_or_default().trim();
    match first {
        "otlp" => ExporterKind::Otlp,
        "console" => ExporterKind::Console,
        "none" => ExporterKind::None,
        other => {
            r.reject(
                key,
                format!("{other:?} is not supported (otlp, console, none)"),
                Some("otlp".to_owned()),
            );
            ExporterKind::Otlp
        }
    }
}

/// The OTLP settings of one signal: each per-signal variable wins over its general one.
fn otlp(r: &mut Reader<'_>, signal: Signal) -> OtlpConfig {
    let infix = signal.env_infix();
    let protocol_key = format!("OTEL_EXPORTER_OTLP_{infix}_PROTOCOL");
    let protocol = match r.first_of(&[&protocol_key, "OTEL_EXPORTER_OTLP_PROTOCOL"]) {
        None => Protocol::Grpc,
        Some((key, v)) => Protocol::parse(&v).unwrap_or_else(|| {
            r.reject(
                &key,
                format!("{v:?} is not grpc, http/protobuf or http/json"),
                Some("grpc".to_owned()),
            );
            Protocol::Grpc
        }),
    };

    let mut endpoint = if let Some(url) = r.get(&format!("OTEL_EXPORTER_OTLP_{infix}_ENDPOINT")) {
        // Per-signal endpoints are used as-is, path included.
        url
    } else if let Some(base) = r.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
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
        if let Some(raw) = r.get(&key) {
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
                Err(_) => r.reject(&key, "malformed; ignoring it", None),
            }
        }
    }

    let timeout_key = format!("OTEL_EXPORTER_OTLP_{infix}_TIMEOUT");
    let timeout = match r.get(&timeout_key) {
        Some(_) => r.millis_or(&timeout_key, 10000),
        None => r.millis_or("OTEL_EXPORTER_OTLP_TIMEOUT", 10000),
    };

    let compression_key = format!("OTEL_EXPORTER_OTLP_{infix}_COMPRESSION");
    let gzip = match r.first_of(&[&compression_key, "OTEL_EXPORTER_OTLP_COMPRESSION"]) {
        None => false,
        Some((_, v)) if v == "gzip" => true,
        Some((_, v)) if v == "none" => false,
        Some((key, v)) => {
            r.reject(
                &key,
                format!("{v:?} is not gzip or none"),
                Some("none".to_owned()),
            );
            false
        }
    };

    // Only http and https are OTLP transports; anything else would fail every export later.
    if let Some((scheme, _)) = endpoint.split_once("://")
        && !scheme.contains(['/', '?', '#'])
        && !scheme.eq_ignore_ascii_case("http")
        && !scheme.eq_ignore_ascii_case("https")
    {
        let fallback = match protocol {
            Protocol::Grpc => "http://localhost:4317".to_owned(),
            _ => format!("http://localhost:4318/{}", signal.http_path()),
        };
        r.reject(
            &format!("OTEL_EXPORTER_OTLP_{infix}_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT"),
            format!("{scheme:?} is not http or https"),
            Some(fallback.clone()),
        );
        endpoint = fallback;
    }

    // INSECURE decides the scheme of a gRPC endpoint given without one, as the OTLP exporter
    // specification says; a scheme, when present, always wins.
    let insecure_key = format!("OTEL_EXPORTER_OTLP_{infix}_INSECURE");
    let insecure = if r.get(&insecure_key).is_some() {
        r.bool_or(&insecure_key, false)
    } else {
        r.bool_or("OTEL_EXPORTER_OTLP_INSECURE", false)
    };
    let has_scheme = endpoint
        .split_once("://")
        .is_some_and(|(scheme, _)| !scheme.contains(['/', '?', '#']));
    if protocol == Protocol::Grpc && !has_scheme {
        let scheme = if insecure { "http" } else { "https" };
        endpoint = format!("{scheme}://{endpoint}");
    }

    let file = |r: &mut Reader<'_>, name: &str| {
        r.first_of(&[
            &format!("OTEL_EXPORTER_OTLP_{infix}_{name}"),
            &format!("OTEL_EXPORTER_OTLP_{name}"),
        ])
        .map(|(_, path)| std::path::PathBuf::from(path))
    };
    let mut tls = TlsFiles {
        certificate: file(r, "CERTIFICATE"),
        client_certificate: file(r, "CLIENT_CERTIFICATE"),
        client_key: file(r, "CLIENT_KEY"),
    };
    if tls.client_certificate.is_some() != tls.client_key.is_some() {
        let (missing, given) = if tls.client_key.is_none() {
            ("CLIENT_KEY", "CLIENT_CERTIFICATE")
        } else {
            ("CLIENT_CERTIFICATE", "CLIENT_KEY")
        };
        r.reject(
            &format!("OTEL_EXPORTER_OTLP_{given}"),
            format!("set without OTEL_EXPORTER_OTLP_{missing}; no client certificate is sent"),
            None,
        );
        tls.client_certificate = None;
        tls.client_key = None;
    }

    OtlpConfig {
        endpoint,
        protocol,
        headers,
        timeout,
        gzip,
        tls,
    }
}

/// `OTEL_TRACES_SAMPLER` and, for the ratio samplers only, `OTEL_TRACES_SAMPLER_ARG`.
fn sampler(r: &mut Reader<'_>) -> SamplerConfig {
    let ratio = |r: &mut Reader<'_>| r.range_or("OTEL_TRACES_SAMPLER_ARG", 1.0, 0.0..=1.0);
    match r.get("OTEL_TRACES_SAMPLER").as_deref() {
        None | Some("parentbased_always_on") => SamplerConfig::ParentBasedAlwaysOn,
        Some("always_on") => SamplerConfig::AlwaysOn,
        Some("always_off") => SamplerConfig::AlwaysOff,
        Some("traceidratio") => SamplerConfig::TraceIdRatio(ratio(r)),
        Some("parentbased_always_off") => SamplerConfig::ParentBasedAlwaysOff,
        Some("parentbased_traceidratio") => SamplerConfig::ParentBasedTraceIdRatio(ratio(r)),
        Some(other) => {
            r.reject(
                "OTEL_TRACES_SAMPLER",
                format!("{other:?} is not supported"),
                Some("parentbased_always_on".to_owned()),
            );
            SamplerConfig::ParentBasedAlwaysOn
        }
    }
}

/// `OTEL_PROPAGATORS`, in order, without repeats; unsupported entries are skipped.
fn propagators(r: &mut Reader<'_>) -> Vec<PropagatorKind> {
    let Some(names) = r.list("OTEL_PROPAGATORS") else {
        return vec![PropagatorKind::TraceContext, PropagatorKind::Baggage];
    };
    let mut out = Vec::new();
    for name in names {
        let kind = match name.as_str() {
            "tracecontext" => PropagatorKind::TraceContext,
            "baggage" => PropagatorKind::Baggage,
            "none" => return Vec::new(),
            other => {
                r.reject(
                    "OTEL_PROPAGATORS",
                    format!("{other:?} is not supported; skipped"),
                    None,
                );
                continue;
            }
        };
        if !out.contains(&kind) {
            out.push(kind);
        }
    }
    out
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
    #[case::grpc_without_scheme_is_secure(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")], Signal::Traces, "https://collector:4317")]
    #[case::grpc_without_scheme_insecure(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"), ("OTEL_EXPORTER_OTLP_INSECURE", "TRUE")], Signal::Metrics, "http://collector:4317")]
    #[case::signal_insecure_wins(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"), ("OTEL_EXPORTER_OTLP_INSECURE", "true"), ("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "false")], Signal::Logs, "https://collector:4317")]
    #[case::only_http_schemes(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector:4317")], Signal::Traces, "http://localhost:4317")]
    #[case::scheme_beats_insecure(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"), ("OTEL_EXPORTER_OTLP_INSECURE", "true")], Signal::Traces, "https://collector:4317")]
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
    fn tls_files_are_read_per_signal_and_a_lone_client_certificate_is_refused() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/otel/ca.pem"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                "/etc/otel/traces-ca.pem",
            ),
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                "/etc/otel/client.pem",
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/otel/client.key"),
            ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "/etc/otel/logs.key"),
        ]);
        let path = |p: &str| Some(std::path::PathBuf::from(p));
        assert_eq!(
            c.traces_otlp.tls.certificate,
            path("/etc/otel/traces-ca.pem")
        );
        assert_eq!(c.metrics_otlp.tls.certificate, path("/etc/otel/ca.pem"));
        assert_eq!(c.metrics_otlp.tls.client_key, path("/etc/otel/client.key"));
        assert_eq!(c.logs_otlp.tls.client_key, path("/etc/otel/logs.key"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);

        let c = config(&[(
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            "/etc/otel/client.pem",
        )]);
        assert_eq!(c.traces_otlp.tls.client_certificate, None);
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("OTEL_EXPORTER_OTLP_CLIENT_KEY"));
    }

    #[test]
    fn an_invalid_rust_log_falls_back_to_info_with_a_warning() {
        let c = config(&[("RUST_LOG", "info,[[[")]);
        assert_eq!(c.log_filter, "info");
        assert!(
            c.warnings.iter().any(|w| w.starts_with("RUST_LOG")),
            "{:?}",
            c.warnings
        );
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
        assert_eq!(c.warnings.len(), 1, "one warning, not one per signal");
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

    #[test]
    fn debug_output_names_headers_but_never_shows_their_values() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=general-s3cret"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
                "authorization=Bearer%20logs-s3cret",
            ),
        ]);
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("api-key") && debug.contains("authorization"));
        assert!(debug.contains("***"));
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
        assert_eq!(c.warnings.len(), 4, "each once: {:?}", c.warnings);
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
