//! What tracing costs on the request path: header extraction (ours against the stock
//! opentelemetry-sdk propagator), injection, and a whole request through the axum router with and
//! without [`telemetry::HttpServerLayer`], spans made and sampled but not exported.
//!
//! `cargo bench -p telemetry --bench overhead`

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Request};
use opentelemetry::propagation::TextMapPropagator;
use telemetry::{
    BaggagePropagator, HeaderExtractor, HeaderInjector, ServiceInfo, TelemetryConfig,
    TraceContextPropagator,
};
use tower::ServiceExt as _;

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "traceparent",
        HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    );
    h.insert(
        "tracestate",
        HeaderValue::from_static("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
    );
    h
}

fn baggage_64() -> HeaderMap {
    let value: Vec<String> = (0..64)
        .map(|i| format!("key{i}=value%20{i};prop"))
        .collect();
    let mut h = HeaderMap::new();
    h.insert(
        "baggage",
        HeaderValue::from_str(&value.join(",")).expect("header"),
    );
    h
}

fn propagation(c: &mut Criterion) {
    let h = headers();
    let ours = TraceContextPropagator;
    let stock = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    c.bench_function("extract traceparent+tracestate (ours)", |b| {
        b.iter(|| ours.extract(&HeaderExtractor(black_box(&h))))
    });
    c.bench_function("extract traceparent+tracestate (stock sdk)", |b| {
        b.iter(|| stock.extract(&HeaderExtractor(black_box(&h))))
    });
    let cx = ours.extract(&HeaderExtractor(&h));
    c.bench_function("inject traceparent+tracestate (ours)", |b| {
        b.iter(|| {
            let mut out = HeaderMap::new();
            ours.inject_context(black_box(&cx), &mut HeaderInjector(&mut out));
            out
        })
    });
    let bag = baggage_64();
    let baggage = BaggagePropagator;
    let stock_baggage = opentelemetry_sdk::propagation::BaggagePropagator::new();
    c.bench_function("extract baggage, 64 members (ours)", |b| {
        b.iter(|| baggage.extract(&HeaderExtractor(black_box(&bag))))
    });
    c.bench_function("extract baggage, 64 members (stock sdk)", |b| {
        b.iter(|| stock_baggage.extract(&HeaderExtractor(black_box(&bag))))
    });
}

fn requests(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let service = ServiceInfo {
        name: "bench",
        version: "0",
        site: "bench",
    };
    let vars = [
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_METRICS_EXPORTER", "none"),
        ("OTEL_LOGS_EXPORTER", "none"),
        ("RUST_LOG", "warn"),
    ];
    let config = TelemetryConfig::from_lookup(&service, |k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    });
    let _guard = runtime.block_on(async { telemetry::init_with(service, config).expect("init") });
    async fn handler() -> &'static str {
        "ok"
    }
    let traced = Router::new()
        .route("/items/{id}", get(handler))
        .layer(telemetry::HttpServerLayer::new());
    let plain = Router::new().route("/items/{id}", get(handler));
    let request = || {
        Request::get("/items/42")
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .body(Body::empty())
            .expect("request")
    };
    c.bench_function("request through the router, untraced", |b| {
        b.to_async(&runtime)
            .iter(|| async { plain.clone().oneshot(request()).await.expect("response") })
    });
    c.bench_function(
        "request through the router, traced (server span, metrics)",
        |b| {
            b.to_async(&runtime)
                .iter(|| async { traced.clone().oneshot(request()).await.expect("response") })
        },
    );
}

criterion_group!(benches, propagation, requests);
criterion_main!(benches);
