//! Metrics do not depend on sampling: with `OTEL_TRACES_SAMPLER=always_off` no span is
//! exported, yet every LLM call still counts its tokens, duration and cost, and the reply still
//! carries the cost.

use std::collections::BTreeSet;

use test_harness::WAIT;

mod in_process;

use in_process::{GATEWAY_TOKEN, system_with_telemetry};

/// `gen_ai.operation.name` of every data point of metric `name`.
fn operations(system: &in_process::System, name: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for point in system.sink.metric_points(name) {
        for kv in point["attributes"].as_array().into_iter().flatten() {
            if kv["key"] == "gen_ai.operation.name" {
                out.insert(kv["value"]["stringValue"].as_str().unwrap_or("").to_owned());
            }
        }
    }
    out
}

#[test]
fn token_duration_and_cost_metrics_are_recorded_when_no_span_is_sampled() {
    let system = system_with_telemetry(&[], &[("OTEL_TRACES_SAMPLER", "always_off")]);
    let (status, reply) = system.chat(
        &[("x-shopmax-gateway-token", GATEWAY_TOKEN)],
        &serde_json::json!({ "question": "What is the price of Samsung 65 QLED?" }),
    );
    assert_eq!(status, 200, "{reply}");
    assert!(
        reply["answer"].as_str().unwrap_or("").contains("Rs 85000"),
        "{reply}"
    );
    assert_eq!(reply["cost"]["currency"], "USD", "{reply}");

    let both: BTreeSet<String> = ["chat", "embeddings"].map(String::from).into();
    let metrics = [
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
        "gen_ai.client.operation.cost",
    ];
    let arrived = system.rt.block_on(system.sink.wait_until(WAIT, |_| {
        metrics
            .iter()
            .all(|name| operations(system, name).is_superset(&both))
    }));
    for name in metrics {
        assert!(
            arrived,
            "{name}: operations {:?}, want chat and embeddings",
            operations(system, name)
        );
    }
    // The metrics came through the same pipeline the spans would have: none of those did.
    assert!(
        system.sink.spans().is_empty(),
        "always_off exported spans: {:?}",
        system
            .sink
            .spans()
            .iter()
            .map(|s| s.span.name.clone())
            .collect::<Vec<_>>()
    );
}
