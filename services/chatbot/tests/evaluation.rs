//! The grounding evaluation on the trace: each answer is checked against the products retrieval
//! returned, and the result is a `gen_ai.evaluation.result` event (an OTLP log record) in the
//! context of the LLM span it judges, and the label and score on the request span. An answer
//! the mock LLM makes up (the `hallucinate` fault) is found by its label.

use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use otlp_sink::{SpanView, hex};
use test_harness::WAIT;

mod in_process;

use in_process::{GATEWAY_TOKEN, System, system_with_telemetry};

fn system() -> &'static System {
    system_with_telemetry(&[], &[("OTEL_LOGS_EXPORTER", "otlp")])
}

/// Asks `question` as a trusted gateway; the reply.
fn ask(question: &str) -> serde_json::Value {
    let (status, reply) = system().chat(
        &[("x-shopmax-gateway-token", GATEWAY_TOKEN)],
        &serde_json::json!({ "question": question }),
    );
    assert_eq!(status, 200, "{reply}");
    reply
}

/// The chatbot's request span and its LLM span, once the trace is in.
fn spans_of(trace_id: &str) -> (SpanView, SpanView) {
    let system = system();
    let spans = system
        .rt
        .block_on(system.sink.wait_for_trace(trace_id, "POST /v1/chat", WAIT));
    let pick = |name: &str| {
        spans
            .iter()
            .find(|s| s.span.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}"))
    };
    (pick("POST /v1/chat"), pick("chat gpt-4o-mini"))
}

/// The evaluation event logged in the context of `span_id`.
fn evaluation_event(span_id: &str) -> LogRecord {
    let system = system();
    let find = || {
        system
            .sink
            .received()
            .logs
            .into_iter()
            .flat_map(|(_, r)| r.resource_logs)
            .flat_map(|rl| rl.scope_logs)
            .flat_map(|sl| sl.log_records)
            .find(|r| r.event_name == "gen_ai.evaluation.result" && hex(&r.span_id) == span_id)
    };
    let arrived = system
        .rt
        .block_on(system.sink.wait_until(WAIT, |_| find().is_some()));
    assert!(arrived, "no gen_ai.evaluation.result for span {span_id}");
    find().expect("the event")
}

fn attribute(record: &LogRecord, key: &str) -> Option<String> {
    record
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            AnyValue::StringValue(s) => s.clone(),
            AnyValue::DoubleValue(d) => d.to_string(),
            AnyValue::IntValue(i) => i.to_string(),
            AnyValue::BoolValue(b) => b.to_string(),
            other => format!("{other:?}"),
        })
}

#[test]
fn a_grounded_answer_is_labelled_grounded_on_the_llm_span_and_the_request_span() {
    let reply = ask("What is the price of Samsung 65 QLED?");
    assert!(
        reply["answer"].as_str().unwrap_or("").contains("Rs 85000"),
        "{reply}"
    );
    let trace_id = reply["trace_id"].as_str().expect("trace id");
    let (request, llm) = spans_of(trace_id);
    assert_eq!(
        request
            .attr("shopmax.evaluation.grounding.label")
            .as_deref(),
        Some("grounded")
    );
    assert_eq!(
        request
            .attr("shopmax.evaluation.grounding.score")
            .as_deref(),
        Some("1")
    );

    let event = evaluation_event(&llm.span_id());
    assert_eq!(
        hex(&event.trace_id),
        trace_id,
        "parented to the LLM span's trace"
    );
    assert_eq!(
        attribute(&event, "gen_ai.evaluation.name").as_deref(),
        Some("shopmax.grounding")
    );
    assert_eq!(
        attribute(&event, "gen_ai.evaluation.score.label").as_deref(),
        Some("grounded")
    );
    assert_eq!(
        attribute(&event, "gen_ai.evaluation.score.value").as_deref(),
        Some("1")
    );
    assert_eq!(
        attribute(&event, "gen_ai.response.id"),
        llm.attr("gen_ai.response.id")
    );
    let explanation = attribute(&event, "gen_ai.evaluation.explanation").expect("explanation");
    assert!(explanation.contains("price Rs 85000"), "{explanation}");
    assert!(explanation.contains("warehouse Mumbai"), "{explanation}");
}

#[test]
fn a_made_up_price_is_labelled_ungrounded_and_explained() {
    // The fault queue is shared with recommendation's query embedding, which takes the first.
    let (status, body) = system().post(
        &format!("http://{}/admin/faults", system().llm),
        &[],
        &serde_json::json!({ "mode": "hallucinate", "count": 2 }),
    );
    assert_eq!(status, 200, "{body}");
    let reply = ask("What is the price of Samsung 65 QLED?");
    assert!(
        reply["answer"].as_str().unwrap_or("").contains("Rs 90000"),
        "{reply}"
    );
    let trace_id = reply["trace_id"].as_str().expect("trace id");
    let (request, llm) = spans_of(trace_id);
    assert_eq!(
        request
            .attr("shopmax.evaluation.grounding.label")
            .as_deref(),
        Some("ungrounded")
    );
    let score: f64 = request
        .attr("shopmax.evaluation.grounding.score")
        .and_then(|s| s.parse().ok())
        .expect("score");
    assert!(score < 1.0, "{score}");
    let event = evaluation_event(&llm.span_id());
    assert_eq!(
        attribute(&event, "gen_ai.evaluation.score.label").as_deref(),
        Some("ungrounded")
    );
    let explanation = attribute(&event, "gen_ai.evaluation.explanation").expect("explanation");
    assert!(explanation.contains("price Rs 90000"), "{explanation}");
}

#[test]
fn every_answer_the_mock_gives_about_a_catalog_product_is_graded_grounded() {
    let catalog = catalog::Catalog::embedded();
    let mut ungrounded = Vec::new();
    let mut traces = Vec::new();
    for product in catalog.products() {
        for question in [
            format!("What is the price of {}?", product.name),
            format!("What are the features of {}?", product.name),
            format!("Which warehouse ships the {}?", product.name),
            format!("Tell me about the {}", product.name),
        ] {
            let reply = ask(&question);
            traces.push((question, reply["trace_id"].as_str().map(str::to_owned)));
        }
    }
    for (question, trace_id) in traces {
        let trace_id = trace_id.expect("a trace id");
        let (request, _) = spans_of(&trace_id);
        if request
            .attr("shopmax.evaluation.grounding.label")
            .as_deref()
            != Some("grounded")
        {
            ungrounded.push(question);
        }
    }
    assert!(ungrounded.is_empty(), "graded ungrounded: {ungrounded:#?}");
}
