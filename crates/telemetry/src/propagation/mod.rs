//! W3C Trace Context (Level 2) and W3C Baggage propagators that follow the specifications to the
//! letter, plus the `http::HeaderMap` carriers they need.
//!
//! The stock opentelemetry-rust propagator reads only the first header of a name and truncates
//! what it cannot keep; the W3C test suite requires that two `traceparent` headers start a new
//! trace, that several `tracestate` headers are joined, and that an invalid `tracestate` is
//! discarded whole. The parsers live in [`traceparent`], [`tracestate`] and [`baggage`]; this
//! module adapts them to [`TextMapPropagator`].
//!
//! # Layout
//! - [`TraceContextPropagator`], [`BaggagePropagator`]: the two propagators.
//! - [`HeaderExtractor`], [`HeaderInjector`]: carriers that see every value of a header.
//! - [`RemoteTrace`]: marks a context whose trace id came from a caller, so we know when the
//!   Level 2 `random` flag is ours to set.

pub(crate) mod baggage;
pub(crate) mod traceparent;
pub(crate) mod tracestate;

use std::sync::{Arc, OnceLock};

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::baggage::{BaggageExt, BaggageMetadata, KeyValueMetadata};
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
const BAGGAGE: &str = "baggage";

/// The trace id, flags and tracestate a caller sent us. Kept in the [`Context`] so that, on the
/// way out, we forward the caller's `random` flag unchanged and set it ourselves only for traces
/// we started (our trace ids come from a random generator, which is what the flag promises).
///
/// The tracestate is kept here too because `opentelemetry::trace::TraceState` validates keys
/// against the older Level 1 grammar (one `@`, a vendor part under 14 characters) and would
/// refuse members that Level 2 allows; we validated them ourselves and forward them as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteTrace {
    /// The caller's trace id.
    pub trace_id: TraceId,
    /// The caller's trace flags as received.
    pub flags: u8,
    /// The caller's tracestate members, validated, in order.
    pub tracestate: Arc<[(String, String)]>,
}

/// The trace flags to send for `span_context` in `cx`: sampled as decided, `random` as received
/// for a caller's trace, and set for a trace started here.
pub(crate) fn outgoing_flags(cx: &Context, span_context: &SpanContext) -> u8 {
    let sampled = if span_context.is_sampled() {
        traceparent::FLAG_SAMPLED
    } else {
        0
    };
    let random = match cx.get::<RemoteTrace>() {
        Some(remote) if remote.trace_id == span_context.trace_id() => {
            remote.flags & traceparent::FLAG_RANDOM
        }
        _ => traceparent::FLAG_RANDOM,
    };
    sampled | random
}

/// Formats the `traceparent` (version 00) value for `span_context` in `cx`.
pub(crate) fn traceparent_value(cx: &Context, span_context: &SpanContext) -> String {
    traceparent::format_traceparent(
        u128::from_be_bytes(span_context.trace_id().to_bytes()),
        u64::from_be_bytes(span_context.span_id().to_bytes()),
        outgoing_flags(cx, span_context),
    )
}

/// W3C Trace Context propagator (`traceparent` + `tracestate`).
#[derive(Debug, Default, Clone, Copy)]
pub struct TraceContextPropagator;

impl TraceContextPropagator {
    /// The remote span context in `extractor`, if its `traceparent` is valid.
    fn extract_span_context(extractor: &dyn Extractor) -> Option<(SpanContext, RemoteTrace)> {
        let parents = all_values(extractor, TRACEPARENT);
        let parent = traceparent::parse_traceparent(&parents)?;
        let states = all_values(extractor, TRACESTATE);
        // An invalid tracestate is discarded whole; the traceparent still stands.
        let members = tracestate::parse_tracestate(&states).unwrap_or_default();
        let trace_state = TraceState::from_key_value(members.iter().cloned()).unwrap_or_default();
        let trace_id = TraceId::from_bytes(parent.trace_id.to_be_bytes());
        let span_context = SpanContext::new(
            trace_id,
            SpanId::from_bytes(parent.parent_id.to_be_bytes()),
            // Only sampled and random have a defined meaning; other bits are not ours to forward.
            TraceFlags::new(parent.flags & (traceparent::FLAG_SAMPLED | traceparent::FLAG_RANDOM)),
            true,
            trace_state,
        );
        Some((
            span_context,
            RemoteTrace {
                trace_id,
                flags: parent.flags,
                tracestate: members.into(),
            },
        ))
    }
}

impl TextMapPropagator for TraceContextPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let span_context = span.span_context();
        if !span_context.is_valid() {
            return;
        }
        injector.set(TRACEPARENT, traceparent_value(cx, span_context));
        // Forward a caller's tracestate as we validated it; otherwise use the span's own.
        let value = match cx.get::<RemoteTrace>() {
            Some(remote) if remote.trace_id == span_context.trace_id() => {
                tracestate::format_tracestate(
                    remote
                        .tracestate
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                )
            }
            _ => {
                let header = span_context.trace_state().header();
                tracestate::parse_tracestate(&[header.as_str()]).and_then(|m| {
                    tracestate::format_tracestate(m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                })
            }
        };
        if let Some(value) = value {
            injector.set(TRACESTATE, value);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match Self::extract_span_context(extractor) {
            Some((span_context, remote)) => {
                cx.with_remote_span_context(span_context).with_value(remote)
            }
            // An invalid or missing traceparent means "start a new trace": drop any parent.
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        static FIELDS: OnceLock<[String; 2]> = OnceLock::new();
        FieldIter::new(FIELDS.get_or_init(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned()]))
    }
}

/// W3C Baggage propagator.
#[derive(Debug, Default, Clone, Copy)]
pub struct BaggagePropagator;

impl TextMapPropagator for BaggagePropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let baggage = cx.baggage();
        let members: Vec<(&str, &str, &str)> = baggage
            .iter()
            .map(|(k, (v, meta))| (k.as_str(), v.as_str(), meta.as_str()))
            .collect();
        if let Some(value) = baggage::format_baggage(members) {
            injector.set(BAGGAGE, value);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let values = all_values(extractor, BAGGAGE);
        if values.is_empty() {
            return cx.clone();
        }
        let members = baggage::parse_baggage(&values);
        if members.is_empty() {
            return cx.clone();
        }
        cx.with_baggage(
            members.into_iter().map(|m| {
                KeyValueMetadata::new(m.key, m.value, BaggageMetadata::from(m.properties))
            }),
        )
    }

    fn fields(&self) -> FieldIter<'_> {
        static FIELDS: OnceLock<[String; 1]> = OnceLock::new();
        FieldIter::new(FIELDS.get_or_init(|| [BAGGAGE.to_owned()]))
    }
}

/// Every value of header `key`, falling back to `get` for carriers that only know one.
fn all_values<'a>(extractor: &'a dyn Extractor, key: &str) -> Vec<&'a str> {
    extractor
        .get_all(key)
        .or_else(|| extractor.get(key).map(|v| vec![v]))
        .unwrap_or_default()
}

/// Reads an [`http::HeaderMap`], exposing every value of repeated headers.
#[derive(Debug)]
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let mut values = self.0.get_all(key).iter().peekable();
        values.peek()?;
        // A value that is not visible ASCII cannot be a valid trace header; keep it as an empty
        // string rather than dropping it, so that "two traceparent headers" is still seen as two.
        Some(values.map(|v| v.to_str().unwrap_or("\u{0}")).collect())
    }
}

/// Writes into an [`http::HeaderMap`], replacing any value already there.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Keeps only the headers a host may receive under the outbound policy.
#[derive(Debug)]
pub(crate) struct FilteringInjector<'a> {
    pub(crate) inner: HeaderInjector<'a>,
    pub(crate) allow: &'a [&'a str],
}

impl Injector for FilteringInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if self.allow.iter().any(|a| a.eq_ignore_ascii_case(key)) {
            self.inner.set(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(headers: &[(&str, &str)]) -> HeaderMap {
        let mut incoming = HeaderMap::new();
        for (k, v) in headers {
            incoming.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        let cx = TraceContextPropagator.extract(&HeaderExtractor(&incoming));
        let mut outgoing = HeaderMap::new();
        TraceContextPropagator.inject_context(&cx, &mut HeaderInjector(&mut outgoing));
        outgoing
    }

    #[test]
    fn level_2_tracestate_keys_survive_extract_and_inject() {
        let out = round_trip(&[
            (
                "traceparent",
                "00-12345678901234567890123456789012-1234567890123456-01",
            ),
            ("tracestate", "foo@@bar=1,t@vvvvvvvvvvvvvvv=2"),
        ]);
        assert_eq!(out["tracestate"], "foo@@bar=1,t@vvvvvvvvvvvvvvv=2");
    }
}
