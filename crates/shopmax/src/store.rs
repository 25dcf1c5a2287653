//! The built-in receiver's memory: the most recent traces, bounded, and the query API that
//! serves them in Tempo's shape, so `shopmax ask` and `shopmax trace` read the built-in receiver
//! with the same client as a real Tempo.
//!
//! - `GET /api/v2/traces/{trace_id}`: `{"trace": {"resourceSpans": [...]}}` (OTLP/JSON), 404 when
//!   the trace is not (or no longer) kept.
//! - `GET /api/search?limit=N`: the N most recently updated traces, newest first,
//!   `{"traces": [{"traceID", "rootServiceName", "rootTraceName", "startTimeUnixNano",
//!   "durationMs", "spanCount"}]}`.
//!
//! Bounded by trace count and span count: when either is exceeded the least recently updated
//! trace goes, so `up` can run all day without growing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use serde::Deserialize;
use serde_json::json;

/// Limits of a [`TraceStore`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most traces kept.
    pub traces: usize,
    /// Most spans kept over all traces.
    pub spans: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            traces: 1000,
            spans: 100_000,
        }
    }
}

#[derive(Debug, Default)]
struct Entry {
    resource_spans: Vec<ResourceSpans>,
    spans: usize,
    /// When it was last added to, for eviction.
    touched: u64,
}

#[derive(Debug, Default)]
struct Inner {
    traces: HashMap<String, Entry>,
    /// `touched` -> trace id: the eviction order.
    order: BTreeMap<u64, String>,
    spans: usize,
    clock: u64,
}

/// The most recent traces, grouped by trace id.
#[derive(Debug, Clone, Default)]
pub struct TraceStore {
    inner: Arc<Mutex<Inner>>,
    limits: Limits,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TraceStore {
    /// An empty store with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            inner: Arc::default(),
            limits,
        }
    }

    /// Files the spans of an export request under their traces, evicting the least recently
    /// updated traces beyond the limits.
    pub fn add(&self, request: &ExportTraceServiceRequest) {
        let mut inner = self.inner.lock().expect("store lock");
        for rs in &request.resource_spans {
            for ss in &rs.scope_spans {
                let mut by_trace: BTreeMap<String, Vec<_>> = BTreeMap::new();
                for span in &ss.spans {
                    by_trace
                        .entry(hex(&span.trace_id))
                        .or_default()
                        .push(span.clone());
                }
                for (trace_id, spans) in by_trace {
                    inner.clock += 1;
                    let now = inner.clock;
                    let count = spans.len();
                    let entry = inner.traces.entry(trace_id.clone()).or_default();
                    let previous = std::mem::replace(&mut entry.touched, now);
                    entry.spans += count;
                    entry.resource_spans.push(ResourceSpans {
                        resource: rs.resource.clone(),
                        scope_spans: vec![ScopeSpans {
                            scope: ss.scope.clone(),
                            spans,
                            schema_url: ss.schema_url.clone(),
                        }],
                        schema_url: rs.schema_url.clone(),
                    });
                    inner.order.remove(&previous);
                    inner.order.insert(now, trace_id);
                    inner.spans += count;
                }
            }
        }
        while inner.traces.len() > self.limits.traces || inner.spans > self.limits.spans {
            let Some((_, oldest)) = inner.order.pop_first() else {
                break;
            };
            if let Some(entry) = inner.traces.remove(&oldest) {
                inner.spans -= entry.spans;
            }
        }
    }

    /// The trace `trace_id` (lower-case hex) as OTLP/JSON, if kept.
    pub fn get(&self, trace_id: &str) -> Option<serde_json::Value> {
        let inner = self.inner.lock().expect("store lock");
        let entry = inner.traces.get(&trace_id.to_ascii_lowercase())?;
        let request = ExportTraceServiceRequest {
            resource_spans: entry.resource_spans.clone(),
        };
        serde_json::to_value(&request).ok()
    }

    /// Traces and spans kept.
    pub fn len(&self) -> (usize, usize) {
        let inner = self.inner.lock().expect("store lock");
        (inner.traces.len(), inner.spans)
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len().0 == 0
    }

    /// The `limit` most recently updated traces, newest first.
    pub fn recent(&self, limit: usize) -> Vec<serde_json::Value> {
        let inner = self.inner.lock().expect("store lock");
        inner
            .order
            .values()
            .rev()
            .take(limit)
            .filter_map(|id| inner.traces.get(id).map(|e| (id, e)))
            .map(|(id, entry)| summary(id, entry))
            .collect()
    }

    /// The query API (see the module docs).
    pub fn routes(&self) -> Router {
        Router::new()
            .route("/api/v2/traces/{trace_id}", get(get_trace))
            .route("/api/search", get(search))
            .with_state(self.clone())
    }
}

/// A line of the search answer: the root span's service and name, start and duration.
fn summary(id: &str, entry: &Entry) -> serde_json::Value {
    let spans = entry
        .resource_spans
        .iter()
        .flat_map(|rs| {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            rs.scope_spans
                .iter()
                .flat_map(|ss| &ss.spans)
                .map(move |s| (service.clone(), s))
        })
        .collect::<Vec<_>>();
    let start = spans
        .iter()
        .map(|(_, s)| s.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let end = spans
        .iter()
        .map(|(_, s)| s.end_time_unix_nano)
        .max()
        .unwrap_or(start);
    let root = spans.iter().find(|(_, s)| s.parent_span_id.is_empty());
    json!({
        "traceID": id,
        "rootServiceName": root.map_or("", |(service, _)| service.as_str()),
        "rootTraceName": root.map_or("", |(_, s)| s.name.as_str()),
        "startTimeUnixNano": start.to_string(),
        "durationMs": end.saturating_sub(start) / 1_000_000,
        "spanCount": spans.len(),
    })
}

async fn get_trace(State(store): State<TraceStore>, Path(trace_id): Path<String>) -> Response {
    match store.get(&trace_id) {
        Some(trace) => Json(json!({ "trace": trace })).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": "not_found", "message": format!("trace {trace_id} is not in the built-in receiver")}})),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct SearchParams {
    limit: Option<usize>,
}

async fn search(
    State(store): State<TraceStore>,
    Query(params): Query<SearchParams>,
) -> Json<serde_json::Value> {
    let limit = params.limit.unwrap_or(20).min(1000);
    Json(json!({ "traces": store.recent(limit) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::Span;

    fn request(trace: u8, spans: u8) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (0..spans)
                        .map(|i| Span {
                            trace_id: vec![trace; 16],
                            span_id: vec![i + 1; 8],
                            name: format!("span {i}"),
                            ..Span::default()
                        })
                        .collect(),
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    #[test]
    fn spans_of_one_trace_from_several_exports_are_kept_together() {
        let store = TraceStore::new(Limits::default());
        store.add(&request(1, 2));
        store.add(&request(1, 3));
        let trace = store.get(&"01".repeat(16)).expect("kept");
        let spans: usize = trace["resourceSpans"]
            .as_array()
            .expect("resourceSpans")
            .iter()
            .map(|rs| rs["scopeSpans"][0]["spans"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(spans, 5);
        assert_eq!(store.len(), (1, 5));
    }

    #[test]
    fn the_least_recently_updated_trace_goes_first_when_a_limit_is_passed() {
        let store = TraceStore::new(Limits {
            traces: 2,
            spans: 100,
        });
        store.add(&request(1, 1));
        store.add(&request(2, 1));
        store.add(&request(1, 1)); // trace 1 is now the most recent
        store.add(&request(3, 1));
        assert!(store.get(&"02".repeat(16)).is_none(), "trace 2 evicted");
        assert!(store.get(&"01".repeat(16)).is_some());
        assert_eq!(store.len(), (2, 3));

        let by_spans = TraceStore::new(Limits {
            traces: 100,
            spans: 4,
        });
        by_spans.add(&request(1, 3));
        by_spans.add(&request(2, 3));
        assert_eq!(by_spans.len(), (1, 3));
    }

    #[test]
    fn recent_lists_the_newest_first() {
        let store = TraceStore::new(Limits::default());
        store.add(&request(1, 1));
        store.add(&request(2, 1));
        let recent = store.recent(10);
        assert_eq!(recent[0]["traceID"], "02".repeat(16));
        assert_eq!(recent[1]["traceID"], "01".repeat(16));
    }
}
