//! Local log output: one line per event on stderr, human-readable or JSON, and every line written
//! inside a traced request carries `trace_id` and `span_id`, so a log line leads to its trace.

use std::fmt::{self, Write as _};

use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Formats events as configured, adding the current trace and span ids.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventFormat {
    format: LogFormat,
    ansi: bool,
}

impl EventFormat {
    /// A formatter for `format`; ANSI colours only for humans at a terminal.
    pub(crate) fn new(format: LogFormat, ansi: bool) -> Self {
        Self { format, ansi }
    }
}

/// Span fields formatted by no one: the fmt layer would otherwise render every span's fields into
/// a string when the span is made and again at each `record`, for span context in log lines.
/// [`EventFormat`] prints only the span's name, so that work (with ANSI styling) was pure cost:
/// callgrind put it at 14% of the chatbot's instructions per traced request.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoSpanFields;

impl<'writer> FormatFields<'writer> for NoSpanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        _writer: Writer<'writer>,
        _fields: R,
    ) -> fmt::Result {
        Ok(())
    }
}

/// The trace and span id of the active OpenTelemetry context, if it holds a valid span.
pub(crate) fn current_ids() -> Option<(String, String)> {
    let cx = opentelemetry::Context::current();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid()
        .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

#[derive(Default)]
struct JsonVisitor {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl Visit for JsonVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.fields
                .insert(field.name().to_owned(), Value::from(value));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields
            .insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields
            .insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields
            .insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields
            .insert(field.name().to_owned(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let rendered = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(rendered);
        } else {
            self.fields
                .insert(field.name().to_owned(), Value::from(rendered));
        }
    }
}

impl<S, N> FormatEvent<S, N> for EventFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let now = humantime_now();
        let ids = current_ids();
        let mut visitor = JsonVisitor::default();
        event.record(&mut visitor);
        let span_name = ctx.lookup_current().map(|s| s.name());

        match self.format {
            LogFormat::Json => {
                let mut obj = Map::new();
                obj.insert("timestamp".into(), Value::from(now));
                obj.insert("level".into(), Value::from(meta.level().as_str()));
                obj.insert("target".into(), Value::from(meta.target()));
                obj.insert(
                    "message".into(),
                    Value::from(visitor.message.unwrap_or_default()),
                );
                if !visitor.fields.is_empty() {
                    obj.insert("fields".into(), Value::Object(visitor.fields));
                }
                if let Some(name) = span_name {
                    obj.insert("span".into(), Value::from(name));
                }
                if let Some((trace_id, span_id)) = ids {
                    obj.insert("trace_id".into(), Value::from(trace_id));
                    obj.insert("span_id".into(), Value::from(span_id));
                }
                let line = serde_json::to_string(&Value::Object(obj)).map_err(|_| fmt::Error)?;
                writeln!(writer, "{line}")
            }
            LogFormat::Human => {
                let level = meta.level().as_str();
                let level = if self.ansi {
                    let colour = match *meta.level() {
                        tracing::Level::ERROR => "31",
                        tracing::Level::WARN => "33",
                        tracing::Level::INFO => "32",
                        _ => "2",
                    };
                    format!("\x1b[{colour}m{level:>5}\x1b[0m")
                } else {
                    format!("{level:>5}")
                };
                let mut line = format!("{now} {level} {}:", meta.target());
                if let Some(message) = visitor.message {
                    let _ = write!(line, " {message}");
                }
                for (k, v) in visitor.fields {
                    match v {
                        Value::String(s) => {
                            let _ = write!(line, " {k}={s:?}");
                        }
                        other => {
                            let _ = write!(line, " {k}={other}");
                        }
                    }
                }
                if let Some((trace_id, span_id)) = ids {
                    let _ = write!(line, " trace_id={trace_id} span_id={span_id}");
                }
                writeln!(writer, "{line}")
            }
        }
    }
}

/// RFC 3339 UTC timestamp with milliseconds, without pulling in a date crate.
fn humantime_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let millis = now.subsec_millis();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TracerProvider as _;
    use std::io;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt as _;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Logs one line outside any span and one inside a traced span; returns the output and the
    /// span's trace id.
    fn capture(format: LogFormat) -> (Vec<String>, String) {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")))
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(EventFormat::new(format, false))
                    .with_writer(move || writer.clone()),
            );
        let mut trace_id = String::new();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside.request");
            let span = tracing::info_span!("request");
            let _entered = span.enter();
            trace_id = current_ids().expect("ids inside a span").0;
            tracing::info!(customer = "c-1", count = 3, "inside.request");
        });
        let text = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("utf8");
        (text.lines().map(str::to_owned).collect(), trace_id)
    }

    #[test]
    fn json_lines_inside_a_span_carry_trace_and_span_ids() {
        let (lines, trace_id) = capture(LogFormat::Json);
        assert_eq!(lines.len(), 2, "{lines:?}");
        let outside: serde_json::Value = serde_json::from_str(&lines[0]).expect("json");
        assert!(outside.get("trace_id").is_none());
        let inside: serde_json::Value = serde_json::from_str(&lines[1]).expect("json");
        assert_eq!(inside["message"], "inside.request");
        assert_eq!(inside["trace_id"], trace_id.as_str());
        assert_eq!(inside["span_id"].as_str().map(str::len), Some(16));
        assert_eq!(inside["fields"]["customer"], "c-1");
        assert_eq!(inside["fields"]["count"], 3);
        assert_eq!(inside["level"], "INFO");
        assert_eq!(inside["span"], "request");
    }

    #[test]
    fn human_lines_inside_a_span_carry_trace_and_span_ids() {
        let (lines, trace_id) = capture(LogFormat::Human);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(!lines[0].contains("trace_id="));
        assert!(lines[1].contains("inside.request"), "{}", lines[1]);
        assert!(
            lines[1].contains(&format!("trace_id={trace_id} span_id=")),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains("customer=\"c-1\""));
    }

    #[test]
    fn timestamp_is_rfc3339_utc() {
        let ts = humantime_now();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.ends_with('Z'));
        assert_eq!(&ts[4..5], "-");
        assert_eq!(&ts[10..11], "T");
        let year: i32 = ts[..4].parse().expect("year");
        assert!(year >= 2024);
    }
}
