//! Copies allow-listed baggage entries onto every span started under that baggage.
//!
//! Baggage travels in headers but is invisible in Jaeger unless it becomes span attributes;
//! copying `session.id` and `user.id` lets an engineer search "every span of this customer's
//! session" across services. Only listed keys are copied: baggage comes from callers and may hold
//! anything, and span attributes are stored for weeks.

use std::time::Duration;

use opentelemetry::baggage::BaggageExt;
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

/// Longest baggage value copied onto a span; longer values are cut at a char boundary.
const MAX_VALUE_LEN: usize = 256;

/// The span processor, wrapping the exporting one (`next`).
///
/// It wraps rather than sits beside it because the SDK hands every processor but the last its own
/// clone of each ended span: as a second processor it cost a full `SpanData` clone per span for an
/// `on_end` that does nothing.
#[derive(Debug)]
pub(crate) struct BaggageSpanProcessor<P> {
    keys: Vec<String>,
    next: Option<P>,
}

impl<P> BaggageSpanProcessor<P> {
    /// Copies the baggage entries named in `keys`, then hands spans on to `next` (if any).
    pub(crate) fn new(keys: Vec<String>, next: Option<P>) -> Self {
        Self { keys, next }
    }
}

impl<P: SpanProcessor> SpanProcessor for BaggageSpanProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        if !self.keys.is_empty() {
            let baggage = cx.baggage();
            for key in &self.keys {
                if let Some(value) = baggage.get(key.as_str()) {
                    let mut value = value.as_str().to_owned();
                    if value.len() > MAX_VALUE_LEN {
                        let mut cut = MAX_VALUE_LEN;
                        while !value.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        value.truncate(cut);
                    }
                    opentelemetry::trace::Span::set_attribute(
                        span,
                        KeyValue::new(key.clone(), value),
                    );
                }
            }
        }
        if let Some(next) = &self.next {
            next.on_start(span, cx);
        }
    }

    fn on_end(&self, span: SpanData) {
        if let Some(next) = &self.next {
            next.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.next
            .as_ref()
            .map_or(Ok(()), SpanProcessor::force_flush)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.next
            .as_ref()
            .map_or(Ok(()), |next| next.shutdown_with_timeout(timeout))
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        if let Some(next) = &mut self.next {
            next.set_resource(resource);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SimpleSpanProcessor};

    #[test]
    fn copies_only_listed_keys_onto_every_span_under_the_baggage() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(BaggageSpanProcessor::new(
                vec!["session.id".into(), "user.id".into()],
                Some(SimpleSpanProcessor::new(exporter.clone())),
            ))
            .build();
        let tracer = provider.tracer("t");
        let cx = Context::new().with_baggage([
            KeyValue::new("session.id", "s-42"),
            KeyValue::new("user.id", "cust-7"),
            KeyValue::new("secret", "do-not-copy"),
        ]);
        let _guard = cx.attach();
        tracer.in_span("parent", |cx| {
            let _child = tracer.start_with_context("child", &cx);
            assert!(cx.span().span_context().is_valid());
        });
        drop(provider.force_flush());
        let spans = exporter.get_finished_spans().expect("spans");
        assert_eq!(spans.len(), 2);
        for span in spans {
            let get = |k: &str| {
                span.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == k)
                    .map(|kv| kv.value.to_string())
            };
            assert_eq!(get("session.id").as_deref(), Some("s-42"), "{}", span.name);
            assert_eq!(get("user.id").as_deref(), Some("cust-7"));
            assert_eq!(get("secret"), None);
        }
    }
}
