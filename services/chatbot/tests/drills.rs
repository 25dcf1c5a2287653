//! Fault drills on 127.0.0.1: the whole system in one process, with a fault turned on through the
//! same knobs a user turns in the demo (`POST /admin/faults` on fraud, recommendation and the mock
//! LLM). In every drill the customer gets a clean answer, degraded or a JSON error with the trace
//! id, never a hang or a 500, and the trace shows what failed.

mod in_process;

use std::time::{Duration, Instant};

use in_process::{System, system_with};
use otlp_sink::SpanView;

/// Short deadlines, so a slow dependency is a timeout within the test's patience.
const SETTINGS: &[(&str, &str)] = &[
    ("CHATBOT_DOWNSTREAM_TIMEOUT_MS", "400"),
    ("CHATBOT_REQUEST_TIMEOUT_MS", "3000"),
    ("LLM_TIMEOUT_MS", "1000"),
    ("LLM_MAX_RETRIES", "2"),
];

fn system() -> &'static System {
    system_with(SETTINGS)
}

fn ask(question: &str) -> (u16, serde_json::Value, Duration) {
    let started = Instant::now();
    let (status, reply) = system().chat(
        &[],
        &serde_json::json!({ "question": question, "customer_id": "cust-drill" }),
    );
    (status, reply, started.elapsed())
}

/// The spans of `trace_id`, once the chatbot's server span (which ends last) has arrived.
fn trace(trace_id: &str) -> Vec<SpanView> {
    let system = system();
    system.rt.block_on(system.sink.wait_for_trace(
        trace_id,
        "POST /v1/chat",
        Duration::from_secs(10),
    ))
}

fn span<'a>(spans: &'a [SpanView], name: &str) -> &'a SpanView {
    spans
        .iter()
        .find(|s| s.span.name == name)
        .unwrap_or_else(|| panic!("no {name} span"))
}

fn trace_id_of(reply: &serde_json::Value) -> String {
    reply["trace_id"]
        .as_str()
        .or_else(|| reply["error"]["trace_id"].as_str())
        .expect("a trace id in the reply")
        .to_owned()
}

/// Turns a knob of fraud or recommendation (`latency_ms`, `error_rate`).
fn fault(service: std::net::SocketAddr, settings: serde_json::Value) {
    let (status, body) = system().post(&format!("http://{service}/admin/faults"), &[], &settings);
    assert_eq!(status, 200, "{body}");
}

/// Queues a fault on the mock LLM (`mode`: `429`, `500` or `slow`; `count` requests).
fn llm_fault(settings: serde_json::Value) {
    let url = format!("http://{}/admin/faults", system().llm);
    let (status, body) = system().post(&url, &[], &settings);
    assert_eq!(status, 200, "{body}");
}

const QUESTION: &str = "What is the price of Samsung 65 QLED?";

#[test]
fn fraud_down_gives_a_degraded_answer_and_the_trace_shows_its_503() {
    fault(system().fraud, serde_json::json!({ "error_rate": 1.0 }));
    let (status, reply, _) = ask(QUESTION);
    assert_eq!(status, 200, "{reply}");
    assert!(reply["degraded"].to_string().contains("fraud"), "{reply}");
    assert!(
        reply["answer"]
            .as_str()
            .is_some_and(|a| a.contains("Rs 85000"))
    );
    let spans = trace(&trace_id_of(&reply));
    let client = span(&spans, "POST /v1/score");
    assert_eq!(
        client.attr("http.response.status_code").as_deref(),
        Some("503")
    );
    assert_eq!(client.attr("error.type").as_deref(), Some("503"));
}

#[test]
fn fraud_slow_times_out_into_a_degraded_answer_within_the_downstream_deadline() {
    fault(system().fraud, serde_json::json!({ "latency_ms": 5000 }));
    let (status, reply, took) = ask(QUESTION);
    assert_eq!(status, 200, "{reply}");
    assert!(reply["degraded"].to_string().contains("fraud"), "{reply}");
    assert!(took < Duration::from_secs(3), "waited {took:?}");
    let spans = trace(&trace_id_of(&reply));
    let client = span(&spans, "POST /v1/score");
    assert!(
        client.attr("error.type").is_some(),
        "{:?}",
        client.span.attributes
    );
}

#[test]
fn recommendation_down_answers_that_lookup_is_unavailable() {
    fault(
        system().recommendation,
        serde_json::json!({ "error_rate": 1.0 }),
    );
    let (status, reply, _) = ask(QUESTION);
    assert_eq!(status, 200, "{reply}");
    assert!(
        reply["degraded"].to_string().contains("recommendation"),
        "{reply}"
    );
    assert_eq!(reply["products"], serde_json::json!([]));
    assert!(
        reply["answer"]
            .as_str()
            .is_some_and(|a| a.contains("cannot look up")),
        "{reply}"
    );
    let spans = trace(&trace_id_of(&reply));
    let client = span(&spans, "POST /v1/recommend");
    assert_eq!(client.attr("error.type").as_deref(), Some("503"));
}

#[test]
fn recommendation_slow_is_cut_at_the_downstream_deadline() {
    fault(
        system().recommendation,
        serde_json::json!({ "latency_ms": 5000 }),
    );
    let (status, reply, took) = ask(QUESTION);
    assert_eq!(status, 200, "{reply}");
    assert!(
        reply["degraded"].to_string().contains("recommendation"),
        "{reply}"
    );
    assert!(took < Duration::from_secs(3), "waited {took:?}");
}

#[test]
fn an_llm_500_storm_is_retried_then_a_502_with_the_trace_id() {
    llm_fault(serde_json::json!({ "mode": "500", "count": 10 }));
    let (status, reply, _) = ask(QUESTION);
    assert_eq!(status, 502, "{reply}");
    assert_eq!(reply["error"]["code"], "llm_unavailable");
    let spans = trace(&trace_id_of(&reply));
    let attempts: Vec<_> = spans
        .iter()
        .filter(|s| s.span.name == "POST /chat/completions")
        .collect();
    assert_eq!(
        attempts.len(),
        3,
        "one attempt and two retries, each its own span"
    );
    assert!(
        attempts
            .iter()
            .all(|a| a.attr("error.type").as_deref() == Some("500"))
    );
    let genai = span(&spans, "chat gpt-4o-mini");
    assert_eq!(genai.attr("error.type").as_deref(), Some("500"));
}

#[test]
fn an_llm_429_storm_is_retried_after_retry_after_then_a_clean_error() {
    // The provider rate-limits everything: recommendation's query embedding too.
    llm_fault(serde_json::json!({ "mode": "429", "count": 50, "retry_after_secs": 1 }));
    let (status, reply, took) = ask(QUESTION);
    assert!(status == 502 || status == 504, "{status}: {reply}");
    assert!(
        took >= Duration::from_secs(1),
        "Retry-After was honoured: {took:?}"
    );
    let spans = trace(&trace_id_of(&reply));
    let limited = spans
        .iter()
        .filter(|s| s.span.name == "POST /chat/completions")
        .filter(|s| s.attr("error.type").as_deref() == Some("429"))
        .count();
    assert!(
        limited >= 2,
        "each rate-limited attempt is its own span: {limited}"
    );
}

#[test]
fn an_llm_that_stalls_past_the_deadlines_gets_a_504_with_the_trace_id() {
    // Slower than the whole request may take (the mock's slow mode sleeps before answering).
    llm_fault(serde_json::json!({ "mode": "slow", "count": 10 }));
    let (status, reply, took) = ask(QUESTION);
    assert!(
        status == 504 && took < Duration::from_secs(6),
        "{status} after {took:?}: {reply}"
    );
    let code = reply["error"]["code"].as_str().unwrap_or_default();
    assert!(
        code == "deadline_exceeded" || code == "llm_timeout",
        "{reply}"
    );
    let spans = trace(&trace_id_of(&reply));
    let server = span(&spans, "POST /v1/chat");
    assert_eq!(
        server.attr("http.response.status_code").as_deref(),
        Some("504")
    );
}

#[test]
fn an_llm_stream_that_stalls_mid_answer_ends_with_an_error_event_not_a_hang() {
    // Two: recommendation's query embedding takes the first (and is cut at the downstream
    // deadline), the chat stream the second.
    llm_fault(serde_json::json!({ "mode": "stall", "count": 2 }));
    let started = Instant::now();
    let text = system().rt.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("http://{}/v1/chat", system().chatbot))
            .json(&serde_json::json!({ "question": QUESTION, "stream": true }))
            .send()
            .await
            .expect("reachable");
        assert_eq!(response.status(), 200);
        tokio::time::timeout(Duration::from_secs(10), response.text())
            .await
            .expect("the stream ended")
            .expect("body")
    });
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(
        text.contains("event: delta"),
        "the first chunk arrived: {text}"
    );
    let last = text.trim_end().rsplit("\n\n").next().unwrap_or_default();
    assert!(
        last.contains("event: error")
            && (last.contains("llm_timeout") || last.contains("deadline_exceeded")),
        "the stream ends with an error event: {last}"
    );
    assert!(last.contains("trace_id"), "{last}");
    let event: serde_json::Value = serde_json::from_str(
        last.lines()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("error data"),
    )
    .expect("json");
    let spans = trace(event["trace_id"].as_str().expect("trace id"));
    let genai = span(&spans, "chat gpt-4o-mini");
    assert!(
        genai.attr("error.type").is_some(),
        "{:?}",
        genai.span.attributes
    );
}
