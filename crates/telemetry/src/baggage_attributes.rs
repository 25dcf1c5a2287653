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

/// The span processor; add it before the exporting processor.
#[derive(Debug, Clone)]
pub(crate) struct BaggageSpanProcessor {
    keys: Vec<String>,
}

impl BaggageSpanProcessor {
    /// Copies the baggage entries named in `keys`.
    pub(crate) fn new(keys: Vec<String>) -> Self {
        Self { keys }
    }
}

impl SpanProcessor for BaggageSpanProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        if self.keys.is_empty() {
            return;
        }
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
                opentelemetry::trace::Span::set_attribute(span, KeyValue::new(key.clone(), value));
            }
        }
    }

    fn on_end(&self, _span: SpanData) {}

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
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
            .with_span_processor(BaggageSpanProcessor::new(vec![
                "session.id".into(),
                "user.id".into(),
            ]))
            .with_span_processor(SimpleSpanProcessor::new(exporter.clone()))
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
