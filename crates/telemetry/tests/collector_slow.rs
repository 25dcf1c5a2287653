//! With a collector that accepts connections but never answers (a black hole), or one that
//! answers every export seconds late, requests go on at the speed of untraced ones, the queue
//! stays bounded, and dropped spans are counted and reported as a log and a metric.

mod common;

use std::sync::atomic::Ordering;

#[test]
fn a_stuck_collector_drops_and_counts_spans_without_slowing_requests() {
    // A listener that accepts and then never speaks: an export hangs until its timeout.
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let blackhole_endpoint = format!("http://{}", blackhole.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in blackhole.incoming().flatten() {
            held.push(stream);
        }
    });
    let env = common::start(|sink| {
        common::vars(&[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                blackhole_endpoint.clone(),
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "30000".into()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "64".into()),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "16".into()),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", sink.grpc_endpoint()),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", sink.grpc_endpoint()),
            ("TELEMETRY_SHUTDOWN_TIMEOUT", "1000".into()),
        ])
    });
    let stats = env.guard.span_stats();
    env.rt.block_on(async {
        // Every export waits 30 s on the stuck collector; no request may wait on that.
        common::assert_requests_do_not_wait_on_export().await;

        let dropped = stats.dropped.load(Ordering::Relaxed);
        assert!(dropped > 0, "1200 spans cannot fit a 64-span queue");
        assert!(stats.queued() <= 64, "memory stays bounded");

        let queue_full_reported = env
            .sink
            .wait_until(common::WAIT, |s| {
                s.received().metrics.iter().any(|(_, req)| {
                    req.resource_metrics
                        .iter()
                        .flat_map(|r| &r.scope_metrics)
                        .flat_map(|s| &s.metrics)
                        .filter(|m| m.name == "otel.sdk.processor.span.processed")
                        .any(|m| {
                            let debug = format!("{m:?}");
                            debug.contains("queue_full")
                                && !debug.contains("as_int: Some(AsInt(0))")
                        })
                })
            })
            .await;
        assert!(queue_full_reported, "queue_full drops reported as a metric");
        assert!(
            env.sink
                .wait_until(common::WAIT, |s| {
                    format!("{:?}", s.received().logs).contains("telemetry.spans.dropped")
                })
                .await,
            "drops logged"
        );
    });
}

#[test]
fn a_collector_that_answers_late_does_not_slow_requests() {
    let env = common::start(|sink| {
        sink.set_delay(std::time::Duration::from_secs(2));
        common::vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", sink.grpc_endpoint()),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "16".into()),
            ("TELEMETRY_SHUTDOWN_TIMEOUT", "1000".into()),
        ])
    });
    let stats = env.guard.span_stats();
    env.rt.block_on(async {
        // Each export takes 2 s; a request that waited on one would take at least that.
        common::assert_requests_do_not_wait_on_export().await;
        // The slow collector does get the spans, late.
        assert!(
            env.sink
                .wait_until(3 * common::WAIT, |_| stats.exported.load(Ordering::Relaxed)
                    > 0)
                .await,
            "spans reach the slow collector"
        );
    });
}
