//! The waterfall, from the JSON of Jaeger 2.19's and Tempo 2.10's trace APIs (see
//! `fixtures/README.md`): both read as the same trace, and it renders as the snapshot.

use shopmax::trace::{Kind, Trace};
use shopmax::waterfall;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn fixture(name: &str) -> serde_json::Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON")
}

fn plain(text: &str) -> String {
    anstream::adapter::strip_str(text).to_string()
}

fn sorted(mut trace: Trace) -> Trace {
    trace.spans.sort_by(|a, b| a.span_id.cmp(&b.span_id));
    trace
}

#[test]
fn jaeger_and_tempo_answers_read_as_the_same_trace() {
    let jaeger = sorted(
        Trace::from_jaeger_json(&fixture("jaeger-2.19-trace.json"), TRACE_ID).expect("jaeger"),
    );
    let tempo =
        sorted(Trace::from_otlp_json(&fixture("tempo-2.10-trace.json"), TRACE_ID).expect("tempo"));
    assert_eq!(jaeger.spans.len(), 7);
    for (j, t) in jaeger.spans.iter().zip(&tempo.spans) {
        assert_eq!(
            (
                &j.span_id,
                &j.parent_id,
                &j.service,
                &j.name,
                j.kind,
                j.error
            ),
            (
                &t.span_id,
                &t.parent_id,
                &t.service,
                &t.name,
                t.kind,
                t.error
            )
        );
        // Jaeger keeps microseconds.
        assert_eq!(j.start_ns / 1000, t.start_ns / 1000, "{}", j.name);
        assert_eq!(
            j.attr("gen_ai.usage.input_tokens"),
            t.attr("gen_ai.usage.input_tokens")
        );
    }
    let server = tempo
        .spans
        .iter()
        .find(|s| s.name == "POST /v1/chat")
        .expect("root");
    assert_eq!(server.kind, Kind::Server);
    assert!(server.parent_id.is_empty());
    assert!(
        tempo
            .spans
            .iter()
            .any(|s| s.error && s.name == "POST /v1/recommend")
    );
    assert_eq!(
        plain(&waterfall::render(&jaeger)),
        plain(&waterfall::render(&tempo))
    );
}

#[test]
fn the_waterfall_shows_each_span_under_its_parent_to_scale() {
    let trace = Trace::from_otlp_json(&fixture("tempo-2.10-trace.json"), TRACE_ID).expect("tempo");
    let rendered = plain(&waterfall::render(&trace)).replace(TRACE_ID, "[trace-id]");
    insta::assert_snapshot!(rendered);
}

#[test]
fn a_trace_of_another_id_is_not_read_as_this_one() {
    let other = "0af7651916cd43dd8448eb211c80319c";
    let trace = Trace::from_otlp_json(&fixture("tempo-2.10-trace.json"), other).expect("tempo");
    assert!(trace.spans.is_empty());
}

#[test]
fn json_that_is_not_a_trace_is_refused() {
    assert!(Trace::from_otlp_json(&serde_json::json!({"x": 1}), TRACE_ID).is_err());
    assert!(Trace::from_jaeger_json(&serde_json::json!({"x": 1}), TRACE_ID).is_err());
}
