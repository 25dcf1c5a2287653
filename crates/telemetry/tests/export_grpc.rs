//! Spans, metrics and logs reach a real OTLP/gRPC receiver with the right resource.

mod common;

#[test]
fn signals_reach_an_otlp_grpc_receiver_with_the_service_resource() {
    let env = common::start(|sink| {
        common::vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", sink.grpc_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".into()),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=shop%20max".into()),
        ])
    });
    common::assert_signals_arrive(&env, otlp_sink::Transport::Grpc);
    let headers = env.sink.received().headers;
    assert!(
        headers
            .iter()
            .any(|h| h.iter().any(|(k, v)| k == "x-tenant" && v == "shop max")),
        "OTEL_EXPORTER_OTLP_HEADERS sent as gRPC metadata"
    );
    assert!(
        headers
            .iter()
            .any(|h| h.iter().any(|(k, v)| k == "grpc-encoding" && v == "gzip")),
        "OTEL_EXPORTER_OTLP_COMPRESSION=gzip compresses the exports"
    );
}
