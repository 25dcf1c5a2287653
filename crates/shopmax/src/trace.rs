//! One trace as the CLI shows it: spans with their service, parent, times, status and the
//! attributes a reader needs, read from the three JSON shapes the CLI meets:
//!
//! - OTLP/JSON `{"resourceSpans": [...]}`, which the built-in receiver serves, wrapped as Tempo
//!   wraps it (`{"trace": {...}}`, Tempo 2.x `GET /api/v2/traces/{id}`) or bare. Ids may be hex
//!   (the OTLP/JSON encoding) or base64 (protobuf's canonical JSON, which Tempo writes): a trace
//!   id is 32 hex or 24 base64 characters, a span id 16 or 12, so the length says which.
//! - Jaeger's query API (`GET /api/traces/{id}`, Jaeger 2.x as 1.x): `{"data": [{"spans": [...],
//!   "processes": {...}}]}`, times in microseconds, the parent in `references` (`CHILD_OF`), the
//!   span kind and status in tags.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

/// Span kind, as both shapes name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Internal, or not said.
    Internal,
    /// Server.
    Server,
    /// Client.
    Client,
    /// Producer.
    Producer,
    /// Consumer.
    Consumer,
}

/// One span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    /// Lower-case hex.
    pub span_id: String,
    /// Lower-case hex; empty for a root.
    pub parent_id: String,
    /// `service.name` of its resource (Jaeger: its process).
    pub service: String,
    /// The span name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Start, nanoseconds since the epoch.
    pub start_ns: u64,
    /// End, nanoseconds since the epoch.
    pub end_ns: u64,
    /// Status ERROR.
    pub error: bool,
    /// Attributes as text.
    pub attributes: BTreeMap<String, String>,
}

impl SpanRecord {
    /// Its duration in nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// The attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// A trace: its id and spans.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Lower-case hex.
    pub trace_id: String,
    /// Its spans, in no particular order.
    pub spans: Vec<SpanRecord>,
}

/// Why JSON could not be read as a trace.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// Neither an OTLP nor a Jaeger trace.
    #[error("not a trace in OTLP/JSON or Jaeger JSON: {0}")]
    Shape(String),
}

impl Trace {
    /// Reads OTLP/JSON (bare, or wrapped as Tempo's `{"trace": ...}` or Jaeger v3's
    /// `{"result": ...}`), keeping the spans of `trace_id` (all when empty).
    pub fn from_otlp_json(json: &Value, trace_id: &str) -> Result<Self, ParseError> {
        let root = json
            .get("trace")
            .or_else(|| json.get("result"))
            .unwrap_or(json);
        let resource_spans = root
            .get("resourceSpans")
            .or_else(|| root.get("batches"))
            .and_then(Value::as_array)
            .ok_or_else(|| ParseError::Shape("no resourceSpans".into()))?;
        let mut spans = Vec::new();
        let mut found_id = String::new();
        for rs in resource_spans {
            let resource = attributes(rs.pointer("/resource/attributes"));
            let service = resource
                .get("service.name")
                .cloned()
                .unwrap_or_else(|| "unknown".into());
            let scopes = rs
                .get("scopeSpans")
                .or_else(|| rs.get("instrumentationLibrarySpans"))
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            for scope in scopes {
                for span in scope
                    .get("spans")
                    .and_then(Value::as_array)
                    .map_or(&[][..], Vec::as_slice)
                {
                    let id = decode_id(span.get("traceId"), 16).unwrap_or_default();
                    if !trace_id.is_empty() && id != trace_id {
                        continue;
                    }
                    found_id = id;
                    spans.push(SpanRecord {
                        span_id: decode_id(span.get("spanId"), 8).unwrap_or_default(),
                        parent_id: decode_id(span.get("parentSpanId"), 8).unwrap_or_default(),
                        service: service.clone(),
                        name: text(span.get("name")),
                        kind: otlp_kind(span.get("kind")),
                        start_ns: number(span.get("startTimeUnixNano")),
                        end_ns: number(span.get("endTimeUnixNano")),
                        error: otlp_error(span.pointer("/status/code")),
                        attributes: attributes(span.get("attributes")),
                    });
                }
            }
        }
        Ok(Self {
            trace_id: if trace_id.is_empty() {
                found_id
            } else {
                trace_id.to_owned()
            },
            spans,
        })
    }

    /// Reads Jaeger's query API answer (`{"data": [trace]}`).
    pub fn from_jaeger_json(json: &Value, trace_id: &str) -> Result<Self, ParseError> {
        let data = json
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| ParseError::Shape("no data array".into()))?;
        let mut spans = Vec::new();
        for trace in data {
            let processes = trace.get("processes").cloned().unwrap_or(Value::Null);
            for span in trace
                .get("spans")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice)
            {
                let id = normalise_hex(&text(span.get("traceID")), 32);
                if !trace_id.is_empty() && id != trace_id {
                    continue;
                }
                let tags = jaeger_tags(span.get("tags"));
                let service = span
                    .get("processID")
                    .and_then(Value::as_str)
                    .and_then(|p| processes.get(p))
                    .and_then(|p| p.get("serviceName"))
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_owned();
                let parent_id = span
                    .get("references")
                    .and_then(Value::as_array)
                    .and_then(|refs| {
                        refs.iter()
                            .find(|r| r.get("refType").and_then(Value::as_str) == Some("CHILD_OF"))
                    })
                    .map(|r| normalise_hex(&text(r.get("spanID")), 16))
                    .unwrap_or_default();
                let start_ns = number(span.get("startTime")).saturating_mul(1000);
                let duration_ns = number(span.get("duration")).saturating_mul(1000);
                let kind = match tags.get("span.kind").map(String::as_str) {
                    Some("server") => Kind::Server,
                    Some("client") => Kind::Client,
                    Some("producer") => Kind::Producer,
                    Some("consumer") => Kind::Consumer,
                    _ => Kind::Internal,
                };
                let error = tags.get("otel.status_code").map(String::as_str) == Some("ERROR")
                    || tags.get("error").map(String::as_str) == Some("true");
                spans.push(SpanRecord {
                    span_id: normalise_hex(&text(span.get("spanID")), 16),
                    parent_id,
                    service,
                    name: text(span.get("operationName")),
                    kind,
                    start_ns,
                    end_ns: start_ns.saturating_add(duration_ns),
                    error,
                    attributes: tags,
                });
            }
        }
        Ok(Self {
            trace_id: trace_id.to_owned(),
            spans,
        })
    }

    /// Services in the trace, in order of first start.
    pub fn services(&self) -> Vec<&str> {
        let mut by_start: Vec<&SpanRecord> = self.spans.iter().collect();
        by_start.sort_by_key(|s| s.start_ns);
        let mut out: Vec<&str> = Vec::new();
        for span in by_start {
            if !out.contains(&span.service.as_str()) {
                out.push(&span.service);
            }
        }
        out
    }

    /// Spans whose parent is not in the trace (the root, and any orphan).
    pub fn roots(&self) -> Vec<&SpanRecord> {
        self.spans
            .iter()
            .filter(|s| {
                s.parent_id.is_empty() || !self.spans.iter().any(|p| p.span_id == s.parent_id)
            })
            .collect()
    }
}

/// Jaeger and Zipkin ids drop leading zeros; OTLP ids are fixed width.
fn normalise_hex(id: &str, width: usize) -> String {
    let id = id.to_ascii_lowercase();
    if id.len() < width {
        format!("{id:0>width$}")
    } else {
        id
    }
}

/// A trace or span id of `bytes` bytes, given in hex or in base64.
fn decode_id(value: Option<&Value>, bytes: usize) -> Option<String> {
    let text = value?.as_str()?;
    if text.is_empty() {
        return None;
    }
    if text.len() == bytes * 2 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(text.to_ascii_lowercase());
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    (raw.len() == bytes).then(|| raw.iter().map(|b| format!("{b:02x}")).collect())
}

fn text(value: Option<&Value>) -> String {
    value.and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// A number given as a JSON number or a string (OTLP/JSON writes 64-bit integers as strings).
fn number(value: Option<&Value>) -> u64 {
    match value {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn otlp_kind(value: Option<&Value>) -> Kind {
    match value {
        Some(Value::Number(n)) => match n.as_u64() {
            Some(2) => Kind::Server,
            Some(3) => Kind::Client,
            Some(4) => Kind::Producer,
            Some(5) => Kind::Consumer,
            _ => Kind::Internal,
        },
        Some(Value::String(s)) => match s.as_str() {
            "SPAN_KIND_SERVER" => Kind::Server,
            "SPAN_KIND_CLIENT" => Kind::Client,
            "SPAN_KIND_PRODUCER" => Kind::Producer,
            "SPAN_KIND_CONSUMER" => Kind::Consumer,
            _ => Kind::Internal,
        },
        _ => Kind::Internal,
    }
}

fn otlp_error(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Number(n)) => n.as_u64() == Some(2),
        Some(Value::String(s)) => s == "STATUS_CODE_ERROR",
        _ => false,
    }
}

/// OTLP/JSON `[{"key": k, "value": {"stringValue": ...}}]` as text.
fn attributes(value: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for kv in value
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        let Some(key) = kv.get("key").and_then(Value::as_str) else {
            continue;
        };
        if let Some(v) = kv.get("value").and_then(any_value) {
            out.insert(key.to_owned(), v);
        }
    }
    out
}

fn any_value(value: &Value) -> Option<String> {
    if let Some(s) = value.get("stringValue").and_then(Value::as_str) {
        return Some(s.to_owned());
    }
    if let Some(b) = value.get("boolValue").and_then(Value::as_bool) {
        return Some(b.to_string());
    }
    if let Some(i) = value.get("intValue") {
        return Some(match i {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    }
    if let Some(d) = value.get("doubleValue") {
        return Some(match d {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    }
    if let Some(values) = value
        .pointer("/arrayValue/values")
        .and_then(Value::as_array)
    {
        let items: Vec<String> = values.iter().filter_map(any_value).collect();
        return Some(format!("[{}]", items.join(",")));
    }
    None
}

/// Jaeger tags `[{"key", "type", "value"}]` as text.
fn jaeger_tags(value: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for tag in value
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
    {
        let Some(key) = tag.get("key").and_then(Value::as_str) else {
            continue;
        };
        let text = match tag.get("value") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => continue,
            Some(other) => other.to_string(),
        };
        out.insert(key.to_owned(), text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_in_hex_or_base64() {
        let hex = serde_json::json!("4bf92f3577b34da6a3ce929d0e0e4736");
        let b64 = serde_json::json!("S/kvNXezTaajzpKdDg5HNg==");
        assert_eq!(decode_id(Some(&hex), 16), decode_id(Some(&b64), 16));
        assert_eq!(
            decode_id(Some(&b64), 16).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(decode_id(Some(&serde_json::json!("")), 8), None);
        assert_eq!(decode_id(Some(&serde_json::json!("zz")), 8), None);
    }

    #[test]
    fn jaeger_ids_without_leading_zeros_are_padded() {
        assert_eq!(normalise_hex("abc", 16), "0000000000000abc");
    }
}
