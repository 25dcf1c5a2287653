//! The real binaries as separate processes, exporting over OTLP/gRPC to a receiver in this test:
//! one question yields one trace whose spans each carry their own service's resource.
//!
//! The binaries must be built first (`cargo build --workspace --bins`, which `.ci/run` does):
//! cargo only builds a package's own binaries for its tests.

mod common;

use std::net::TcpListener;
use std::process::Child;
use std::time::Duration;

use common::{Processes, wait_ready};
use otlp_sink::OtlpSink;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn start(name: &str, envs: &[(&str, String)], otlp: &str) -> Child {
    let mut all: Vec<(String, String)> = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
        ("TELEMETRY_INTERNAL_HOSTS", "127.0.0.1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    all.extend(envs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    common::spawn(name, &all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binaries_export_one_trace_with_a_resource_per_service() {
    let sink = OtlpSink::start().await.expect("sink");
    let otlp = sink.grpc_endpoint();
    let (llm, fraud, reco, chat) = (free_port(), free_port(), free_port(), free_port());
    let llm_url = format!("http://localhost:{llm}/v1");
    let mut procs = Processes(vec![
        (
            "mock-llm".into(),
            start(
                "mock-llm",
                &[
                    ("MOCK_LLM_PORT", llm.to_string()),
                    ("MOCK_LLM_TTFT_MS", "0".into()),
                    ("MOCK_LLM_TOKEN_DELAY_MS", "0".into()),
                    ("MOCK_LLM_EMBED_DELAY_MS", "0".into()),
                ],
                &otlp,
            ),
        ),
        (
            "fraud".into(),
            start("fraud", &[("PORT", fraud.to_string())], &otlp),
        ),
        (
            "recommendation".into(),
            start(
                "recommendation",
                &[
                    ("PORT", reco.to_string()),
                    ("LLM_BASE_URL", llm_url.clone()),
                ],
                &otlp,
            ),
        ),
        (
            "chatbot".into(),
            start(
                "chatbot",
                &[
                    ("PORT", chat.to_string()),
                    ("FRAUD_URL", format!("http://127.0.0.1:{fraud}")),
                    ("RECOMMENDATION_URL", format!("http://127.0.0.1:{reco}")),
                    ("LLM_BASE_URL", llm_url),
                ],
                &otlp,
            ),
        ),
    ]);
    let client = reqwest::Client::new();
    for port in [llm, fraud, reco, chat] {
        wait_ready(&client, &format!("http://127.0.0.1:{port}/readyz")).await;
    }

    let trace_id =
        common::ask_seed_question(&client, &format!("127.0.0.1:{chat}"), "cust-42").await;
    // Stop the services gracefully: their final batches must still arrive.
    common::terminate_all(&mut procs);

    let expected = [
        ("chatbot", "Bangalore", "POST /v1/chat"),
        ("fraud", "Hyderabad", "POST /v1/score"),
        ("recommendation", "Mumbai", "POST /v1/recommend"),
    ];
    let spans = sink
        .wait_for_spans(expected.len(), Duration::from_secs(20), |s| {
            s.trace_id() == trace_id && s.span.kind == 2
        })
        .await;
    for (service, site, server_span) in expected {
        let span = spans
            .iter()
            .find(|s| s.resource_attr("service.name") == Some(service))
            .unwrap_or_else(|| panic!("no server span from {service}: {spans:?}"));
        assert_eq!(span.span.name, server_span);
        assert_eq!(span.resource_attr("geo.locality.name"), Some(site));
        assert_eq!(span.resource_attr("service.namespace"), Some("shopmax"));
        assert!(span.resource_attr("service.version").is_some());
    }
    let all = sink.spans();
    assert!(
        all.iter().any(|s| s.trace_id() == trace_id
            && s.resource_attr("service.name") == Some("chatbot")
            && s.span.name == "chat gpt-4o-mini"),
        "the LLM span is in the chatbot's part of the trace"
    );
    assert!(
        !all.iter()
            .any(|s| s.resource_attr("service.name") == Some("mock-llm")),
        "the mock LLM stands in for an external provider and exports no spans"
    );
}

/// SIGTERM under load: every request the service had accepted is answered before it exits, and
/// it exits cleanly. Fraud's fault knob holds each request 400 ms, so the signal lands while all
/// of them are in flight. (Every service shares `service_kit::serve`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_stopped_under_load_answers_every_request_it_accepted() {
    let port = free_port();
    let mut procs = Processes(vec![(
        "fraud".into(),
        common::spawn(
            "fraud",
            &[
                ("PORT".to_owned(), port.to_string()),
                ("FAULT_LATENCY_MS".to_owned(), "400".to_owned()),
                ("OTEL_SDK_DISABLED".to_owned(), "true".to_owned()),
                ("RUST_LOG".to_owned(), "warn".to_owned()),
            ],
        ),
    )]);
    let client = reqwest::Client::builder()
        // A new connection per request: none is an idle keep-alive the shutdown may close.
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    wait_ready(&client, &format!("http://127.0.0.1:{port}/readyz")).await;

    let requests: Vec<_> = (0..16)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .post(format!("http://127.0.0.1:{port}/v1/score"))
                    .json(&serde_json::json!({
                        "customer_id": format!("cust-{i}"),
                        "session_id": format!("sess-{i}"),
                        "question": "What is the price of Samsung 65 QLED?",
                    }))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    // All sixteen are accepted and waiting on the 400 ms knob when the signal arrives.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let child = &mut procs.0[0].1;
    let status = tokio::task::block_in_place(|| common::terminate(child));

    for request in requests {
        let outcome = request.await.expect("task");
        assert_eq!(outcome.ok(), Some(200), "an accepted request was lost");
    }
    assert!(status.success(), "clean exit after draining: {status}");
    // Once stopped, nothing is accepted any more: a refused connection, not a dropped request.
    let late = client
        .post(format!("http://127.0.0.1:{port}/v1/score"))
        .json(&serde_json::json!({}))
        .send()
        .await;
    assert!(late.is_err_and(|e| e.is_connect()));
}
