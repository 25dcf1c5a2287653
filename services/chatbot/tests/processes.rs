//! The real binaries as separate processes, exporting over OTLP/gRPC to a receiver in this test:
//! one question yields one trace whose spans each carry their own service's resource.
//!
//! The binaries must be built first (`cargo build --workspace --bins`, which `.ci/run` does):
//! cargo only builds a package's own binaries for its tests.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use otlp_sink::OtlpSink;

fn bin(name: &str) -> PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/<name>
    let exe = std::env::current_exe().expect("test path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Kills the processes on drop so a failed assertion leaves nothing running.
struct Processes(Vec<(String, Child)>);

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(name: &str, envs: &[(&str, String)], otlp: &str) -> Child {
    Command::new(bin(name))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "1000")
        .env("RUST_LOG", "warn")
        .env("TELEMETRY_INTERNAL_HOSTS", "127.0.0.1")
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"))
}

async fn wait_ready(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never became ready");
}

/// SIGTERM, then wait: the services drain and flush on SIGTERM, as under `docker stop`.
fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "process ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
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
            spawn(
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
            spawn("fraud", &[("PORT", fraud.to_string())], &otlp),
        ),
        (
            "recommendation".into(),
            spawn(
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
            spawn(
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

    let response = client
        .post(format!("http://127.0.0.1:{chat}/v1/chat"))
        .json(&serde_json::json!({
            "question": "What is the price of Samsung 65 QLED?",
            "customer_id": "cust-42"
        }))
        .send()
        .await
        .expect("chatbot reachable");
    assert_eq!(response.status(), 200);
    let reply: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        reply["answer"],
        "The Samsung 65 QLED is priced at Rs 85000 and is available at the Mumbai warehouse."
    );
    let trace_id = reply["trace_id"].as_str().expect("trace id").to_owned();

    // Stop the services gracefully: their final batches must still arrive.
    for (name, child) in procs.0.iter_mut().rev() {
        let status = terminate(child);
        assert!(status.success(), "{name} exited with {status}");
    }

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
