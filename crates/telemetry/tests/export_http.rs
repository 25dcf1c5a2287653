//! Spans, metrics and logs reach a real OTLP/HTTP (protobuf) receiver with the right resource.

mod common;

#[test]
fn signals_reach_an_otlp_http_protobuf_receiver_with_the_service_resource() {
    let env = common::start(|sink| {
        common::vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", sink.http_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".into()),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=shopmax".into()),
        ])
    });
    common::assert_signals_arrive(&env, otlp_sink::Transport::HttpProtobuf);
    let headers = env.sink.received().headers;
    assert!(
        headers
            .iter()
            .any(|h| h.iter().any(|(k, v)| k == "x-tenant" && v == "shopmax"))
    );
    assert!(
        headers.iter().any(|h| h
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/x-protobuf")),
        "protobuf bodies"
    );
    assert!(
        headers.iter().any(|h| h
            .iter()
            .any(|(k, v)| k == "content-encoding" && v == "gzip")),
        "OTEL_EXPORTER_OTLP_COMPRESSION=gzip compresses the exports"
    );
}
