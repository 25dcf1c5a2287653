//! Metric instruments: HTTP server and client durations per the HTTP semantic conventions, and
//! the span pipeline's own health (queue size, drops, export failures) per the SDK
//! self-observability conventions.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};

use crate::batch::SpanPipelineStats;

/// Bucket boundaries (seconds) the HTTP semantic conventions recommend for request durations.
pub(crate) const HTTP_DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Instrumentation scope of everything this crate records.
pub(crate) const SCOPE: &str = "shopmax-telemetry";

fn meter() -> Meter {
    opentelemetry::global::meter(SCOPE)
}

/// `http.server.request.duration`.
pub(crate) fn server_duration() -> Histogram<f64> {
    meter()
        .f64_histogram("http.server.request.duration")
        .with_unit("s")
        .with_description("Duration of HTTP server requests.")
        .with_boundaries(HTTP_DURATION_BUCKETS.to_vec())
        .build()
}

/// `http.client.request.duration`.
pub(crate) fn client_duration() -> Histogram<f64> {
    meter()
        .f64_histogram("http.client.request.duration")
        .with_unit("s")
        .with_description("Duration of HTTP client requests.")
        .with_boundaries(HTTP_DURATION_BUCKETS.to_vec())
        .build()
}

/// Registers the span pipeline's self-observability instruments on `meter`.
pub(crate) fn register_pipeline(meter: &Meter, stats: Arc<SpanPipelineStats>) {
    let component = [
        KeyValue::new("otel.component.type", "batching_span_processor"),
        KeyValue::new("otel.component.name", "batching_span_processor/0"),
    ];
    let s = stats.clone();
    let attrs = component.clone();
    let _processed = meter
        .u64_observable_counter("otel.sdk.processor.span.processed")
        .with_unit("{span}")
        .with_description("Spans handed to the exporter, or dropped (error.type=queue_full).")
        .with_callback(move |obs| {
            let ok = s.enqueued.load(Ordering::Relaxed);
            let dropped = s.dropped.load(Ordering::Relaxed);
            obs.observe(ok, &attrs);
            let mut with_error = attrs.to_vec();
            with_error.push(KeyValue::new("error.type", "queue_full"));
            obs.observe(dropped, &with_error);
        })
        .build();
    let s = stats.clone();
    let attrs = component.clone();
    let _queue = meter
        .i64_observable_up_down_counter("otel.sdk.processor.span.queue.size")
        .with_unit("{span}")
        .with_description("Spans waiting in the processor's queue.")
        .with_callback(move |obs| {
            obs.observe(s.queued() as i64, &attrs);
        })
        .build();
    let s = stats.clone();
    let attrs = component.clone();
    let _capacity = meter
        .i64_observable_up_down_counter("otel.sdk.processor.span.queue.capacity")
        .with_unit("{span}")
        .with_description("Capacity of the processor's queue.")
        .with_callback(move |obs| {
            obs.observe(s.capacity() as i64, &attrs);
        })
        .build();
    let s = stats;
    let _exported = meter
        .u64_observable_counter("otel.sdk.exporter.span.exported")
        .with_unit("{span}")
        .with_description("Spans the exporter delivered, or failed to (error.type=export_failed).")
        .with_callback(move |obs| {
            let attrs = [KeyValue::new("otel.component.type", "otlp_span_exporter")];
            obs.observe(s.exported.load(Ordering::Relaxed), &attrs);
            obs.observe(
                s.export_failed.load(Ordering::Relaxed),
                &[
                    attrs[0].clone(),
                    KeyValue::new("error.type", "export_failed"),
                ],
            );
        })
        .build();
}
