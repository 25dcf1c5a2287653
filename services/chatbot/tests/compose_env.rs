//! The real binaries with exactly the environment docker-compose.yml gives them (defaults of
//! every `${VAR:-default}`), their hostnames mapped to 127.0.0.1, and an OTLP receiver where the
//! compose file puts the Collector (otel-collector:4317). A chat request must succeed and the
//! spans must reach that endpoint. This is as close to `docker compose up` as a machine without
//! Docker gets.
//!
//! It binds the compose ports (4317, 8080-8082, 8090) on 127.0.0.1, so it fails if something else
//! (a running `deploy/run-local.sh`, say) holds them.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::{Processes, spawn, wait_ready};
use otlp_sink::OtlpSink;
use serde_norway::Value;

const SERVICES: [&str; 4] = ["mock-llm", "fraud", "recommendation", "chatbot"];
const HOSTS: [&str; 5] = [
    "otel-collector",
    "chatbot",
    "recommendation",
    "fraud",
    "mock-llm",
];

fn compose() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docker-compose.yml");
    let text = std::fs::read_to_string(&path).expect("docker-compose.yml");
    let mut value: Value = serde_norway::from_str(&text).expect("valid YAML");
    // `<<: *telemetry-env` merge keys, as Compose applies them.
    value.apply_merge().expect("merge keys");
    value
}

/// Compose interpolation with an empty host environment: `${VAR:-default}` and `${VAR-default}`
/// give the default, `${VAR}` gives "", `$$` is a literal `$`.
fn interpolate(raw: &str) -> String {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').expect("closed ${");
            let expr = &body[..end];
            if let Some((_, default)) = expr.split_once(":-").or_else(|| expr.split_once('-')) {
                out.push_str(default);
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container port each service host listens on, from its own environment.
fn port_of(env: &BTreeMap<String, String>) -> Option<String> {
    env.get("PORT")
        .or_else(|| env.get("MOCK_LLM_PORT"))
        .cloned()
}

/// Maps `http://<service>:` to `http://127.0.0.1:`, as an /etc/hosts entry would, and allow-list
/// entries to `127.0.0.1:<port>` so "internal" keeps meaning the same three services.
fn map_hosts(key: &str, value: &str, ports: &BTreeMap<String, String>) -> String {
    if key == "TELEMETRY_INTERNAL_HOSTS" {
        return value
            .split(',')
            .map(|host| match ports.get(host.trim()) {
                Some(port) => format!("127.0.0.1:{port}"),
                None => host.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(",");
    }
    let mut value = value.to_owned();
    for host in HOSTS {
        value = value.replace(&format!("://{host}:"), "://127.0.0.1:");
    }
    value
}

fn environments() -> BTreeMap<String, BTreeMap<String, String>> {
    let compose = compose();
    let mut raw = BTreeMap::new();
    for name in SERVICES {
        let env = compose["services"][name]["environment"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{name} has an environment mapping"));
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| {
                let k = k.as_str().expect("string key").to_owned();
                let v = match v {
                    Value::String(s) => interpolate(s),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => String::new(),
                    other => panic!("{name}.{k}: unexpected {other:?}"),
                };
                (k, v)
            })
            .collect();
        raw.insert(name.to_owned(), env);
    }
    let ports: BTreeMap<String, String> = raw
        .iter()
        .filter_map(|(name, env)| port_of(env).map(|p| (name.clone(), p)))
        .collect();
    raw.into_iter()
        .map(|(name, env)| {
            let env = env
                .into_iter()
                .map(|(k, v)| {
                    let v = map_hosts(&k, &v, &ports);
                    (k, v)
                })
                .collect();
            (name, env)
        })
        .collect()
}

#[test]
fn interpolation_follows_compose_rules() {
    assert_eq!(
        interpolate("${LLM_BASE_URL:-http://mock-llm:8090/v1}"),
        "http://mock-llm:8090/v1"
    );
    assert_eq!(interpolate("a=${X-b}"), "a=b");
    assert_eq!(interpolate("${LLM_API_KEY:-}"), "");
    assert_eq!(interpolate("${UNSET}"), "");
    assert_eq!(interpolate("$$HOME"), "$HOME");
}

#[test]
fn compose_gives_the_services_only_otel_and_their_own_settings() {
    let envs = environments();
    let chatbot = &envs["chatbot"];
    assert_eq!(
        chatbot["OTEL_EXPORTER_OTLP_ENDPOINT"],
        "http://127.0.0.1:4317"
    );
    assert_eq!(chatbot["FRAUD_URL"], "http://127.0.0.1:8082");
    assert_eq!(chatbot["LLM_BASE_URL"], "http://127.0.0.1:8090/v1");
    assert_eq!(
        chatbot["TELEMETRY_INTERNAL_HOSTS"],
        "127.0.0.1:8080,127.0.0.1:8081,127.0.0.1:8082"
    );
    for (service, env) in &envs {
        for key in env.keys() {
            let ours = key.starts_with("OTEL_")
                || key.starts_with("TELEMETRY_")
                || key.starts_with("LLM_")
                || key.starts_with("MOCK_LLM_")
                || key.starts_with("CHATBOT_")
                || key.starts_with("FRAUD_")
                || key.starts_with("RECOMMENDATION_")
                || matches!(key.as_str(), "PORT" | "RUST_LOG" | "LOG_FORMAT");
            assert!(ours, "{service} gets an unexpected variable {key}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_with_the_compose_environment_answer_and_export_to_its_collector() {
    let envs = environments();
    let collector = envs["chatbot"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
        .strip_prefix("http://")
        .expect("http endpoint")
        .to_owned();
    let grpc = tokio::net::TcpListener::bind(&collector)
        .await
        .unwrap_or_else(|e| panic!("binding the compose collector address {collector}: {e}"));
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sink = OtlpSink::serve(grpc, http).await.expect("sink");

    let mut procs = Processes(Vec::new());
    for name in SERVICES {
        let mut env: Vec<(String, String)> = envs[name].clone().into_iter().collect();
        // Tests cannot wait for the mock's demo latency; everything else is as compose says.
        if name == "mock-llm" {
            for key in [
                "MOCK_LLM_TTFT_MS",
                "MOCK_LLM_TOKEN_DELAY_MS",
                "MOCK_LLM_EMBED_DELAY_MS",
            ] {
                env.push((key.to_owned(), "0".to_owned()));
            }
        }
        procs.0.push((name.to_owned(), spawn(name, &env)));
    }
    let client = reqwest::Client::new();
    for name in SERVICES {
        let port = port_of(&envs[name]).expect("port");
        wait_ready(&client, &format!("http://127.0.0.1:{port}/readyz")).await;
    }

    let trace_id = common::ask_seed_question(&client, "127.0.0.1:8080", "cust-7").await;
    common::terminate_all(&mut procs);
    let spans = sink
        .wait_for_spans(3, Duration::from_secs(20), |s| {
            s.trace_id() == trace_id && s.span.kind == 2
        })
        .await;
    let mut services: Vec<&str> = spans
        .iter()
        .filter_map(|s| s.resource_attr("service.name"))
        .collect();
    services.sort_unstable();
    assert_eq!(services, vec!["chatbot", "fraud", "recommendation"]);
    for span in &spans {
        assert_eq!(
            span.resource_attr("deployment.environment.name"),
            Some("docker-compose"),
            "OTEL_RESOURCE_ATTRIBUTES from the compose file"
        );
    }
    // The services' own metrics reach the collector too.
    assert!(
        sink.wait_until(Duration::from_secs(10), |s| s
            .metric_names()
            .iter()
            .any(|n| n == "http.server.request.duration"))
            .await
    );
}
