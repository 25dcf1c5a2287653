//! With no OTLP receiver listening, traced requests are not slowed and failed exports are
//! counted and reported.

mod common;

use std::sync::atomic::Ordering;

#[test]
fn requests_are_unharmed_and_failed_exports_counted_when_no_receiver_listens() {
    // Bind then drop a listener: nothing listens on that port any more.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_endpoint = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let env = common::start(|sink| {
        common::vars(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", dead_endpoint.clone()),
            // Metrics and logs go to a live receiver so the failure report can be observed.
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", sink.grpc_endpoint()),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", sink.grpc_endpoint()),
        ])
    });
    let stats = env.guard.span_stats();
    env.rt.block_on(async {
        common::assert_requests_do_not_wait_on_export().await;

        assert!(
            env.sink
                .wait_until(common::WAIT, |_| stats
                    .export_failed
                    .load(Ordering::Relaxed)
                    > 0)
                .await,
            "failed exports are counted"
        );
        // The failure is reported as a metric and as a log record.
        assert!(
            env.sink
                .wait_until(common::WAIT, |s| {
                    s.metric_names()
                        .iter()
                        .any(|n| n == "otel.sdk.exporter.span.exported")
                })
                .await
        );
        // The report is written by the export thread between exports, and each failed export
        // first exhausts the exporter's retries: on a loaded machine the first report can come
        // several seconds after the first failure, and then waits for the log batch.
        assert!(
            env.sink
                .wait_until(3 * common::WAIT, |s| {
                    format!("{:?}", s.received().logs).contains("telemetry.spans.export_failed")
                })
                .await,
            "export failure logged"
        );
        // The exporter's own complaints stay local: shipping them over OTLP would feed the
        // pipeline with reports of its own failures.
        let logs = format!("{:?}", env.sink.received().logs);
        assert!(
            !logs.contains("opentelemetry-otlp") && !logs.contains("Export.Failed"),
            "the exporter's own events were exported: {logs}"
        );
    });
    assert!(stats.enqueued.load(Ordering::Relaxed) >= 320 * 4);
}
