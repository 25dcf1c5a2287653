//! The whole system in one process: the mock LLM, fraud, recommendation and the chatbot, each on
//! its own port with real HTTP between them, exporting over OTLP/gRPC to a receiver in the test.
//! One system per test process (telemetry is global); nextest runs each test in its own process.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use env_config::FromEnv as _;
use otlp_sink::OtlpSink;
use telemetry::{ServiceInfo, TelemetryGuard};
use test_harness::TestEnv;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

/// The running system.
pub struct System {
    _guard: TelemetryGuard,
    pub sink: OtlpSink,
    pub chatbot: SocketAddr,
    pub fraud: SocketAddr,
    pub recommendation: SocketAddr,
    pub llm: SocketAddr,
    pub rt: Runtime,
}

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = service_kit::serve(listener, router).await;
    });
    addr
}

/// Every JSON chat completion the mock LLM sent, as it went over the wire: what the LLM span's
/// token counts must match (not the chatbot's echo of the same parsed value).
pub static RAW_COMPLETIONS: Mutex<Vec<serde_json::Value>> = Mutex::new(Vec::new());

/// Records JSON bodies of the mock's chat completions into [`RAW_COMPLETIONS`] (streams pass
/// through untouched).
async fn record_completions(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let is_chat = request.uri().path().ends_with("/chat/completions");
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(is_chat && is_json) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("mock body");
    if let Ok(json) = serde_json::from_slice(&bytes) {
        RAW_COMPLETIONS.lock().expect("raw").push(json);
    }
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// The secret of the stand-in gateway: requests that send it are trusted with their baggage.
pub const GATEWAY_TOKEN: &str = "test-gateway-secret-0123456789";

/// The system, started on first use with the chatbot settings `chatbot_env` (which win over
/// the defaults here).
pub fn system_with(chatbot_env: &'static [(&'static str, &'static str)]) -> &'static System {
    system_with_telemetry(chatbot_env, &[])
}

/// The system, started on first use with the chatbot settings `chatbot_env` and the telemetry
/// settings `telemetry_env` (both win over the defaults here).
pub fn system_with_telemetry(
    chatbot_env: &'static [(&'static str, &'static str)],
    telemetry_env: &'static [(&'static str, &'static str)],
) -> &'static System {
    static SYSTEM: OnceLock<System> = OnceLock::new();
    SYSTEM.get_or_init(|| {
        let service = ServiceInfo {
            name: "shopmax-in-process",
            version: "0.0.0",
            site: "test",
        };
        let TestEnv {
            guard,
            policy,
            sink,
            rt,
        } = TestEnv::start(service, |sink| {
            let mut vars = test_harness::vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", sink.grpc_endpoint()),
                ("OTEL_LOGS_EXPORTER", "none".into()),
                // Our services answer on 127.0.0.1; the LLM, reached as localhost, is external.
                ("TELEMETRY_INTERNAL_HOSTS", "127.0.0.1".into()),
            ]);
            vars.extend(
                telemetry_env
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            vars
        });

        let chatbot = rt.block_on(async {
            let mut mock_config = mock_llm::Config::for_tests();
            // The `slow` fault of the drills: longer than any deadline the tests set.
            mock_config.slow = Duration::from_secs(10);
            let mock = mock_llm::AppState::from_config(mock_config).expect("mock");
            let llm =
                serve(mock_llm::app(mock).layer(axum::middleware::from_fn(record_completions)))
                    .await;
            let llm_url = format!("http://localhost:{}/v1", llm.port());
            // The drills turn the fault knobs through the admin endpoint.
            let base =
                env_config::from_pairs(&[("LLM_BASE_URL", &llm_url), ("FAULT_ADMIN", "true")]);

            let fraud_config = fraud::Config::from_lookup(&base).expect("fraud config");
            let fraud = serve(fraud::app(fraud::AppState::from_config(&fraud_config))).await;

            let reco_config = recommendation::Config::from_lookup(&base).expect("reco config");
            let reco_state = recommendation::AppState::from_config(&reco_config, policy.clone())
                .expect("recommendation state");
            // The mock answers at once, so the first attempt embeds the catalog.
            tokio::time::timeout(Duration::from_secs(5), reco_state.spawn_indexing())
                .await
                .expect("catalog embedded in time")
                .expect("indexing task");
            let reco = serve(recommendation::app(reco_state.clone())).await;

            // Built from its configuration as `main` builds it.
            let fraud_url = format!("http://127.0.0.1:{}", fraud.port());
            let reco_url = format!("http://127.0.0.1:{}", reco.port());
            // The chat page's spans go to the same receiver as everyone else's.
            let browser_traces = format!("{}/v1/traces", sink.http_endpoint());
            let mut pairs = vec![
                ("CHATBOT_BROWSER_TRACES_URL", browser_traces.as_str()),
                ("LLM_BASE_URL", llm_url.as_str()),
                ("FRAUD_URL", fraud_url.as_str()),
                ("RECOMMENDATION_URL", reco_url.as_str()),
                ("CHATBOT_DOWNSTREAM_TIMEOUT_MS", "5000"),
                ("CHATBOT_GATEWAY_TOKEN", GATEWAY_TOKEN),
            ];
            pairs.extend_from_slice(chatbot_env);
            // Later pairs overwrite earlier ones: a test's own settings win.
            let map: std::collections::HashMap<&str, &str> = pairs.iter().copied().collect();
            let config =
                chatbot::Config::from_lookup(&|k: &str| map.get(k).map(|v| (*v).to_owned()))
                    .expect("chatbot config");
            let state = chatbot::AppState::from_config(config, policy.clone()).expect("chatbot");
            (serve(chatbot::app(state)).await, fraud, reco, llm)
        });
        let (chatbot, fraud, recommendation, llm) = chatbot;
        System {
            _guard: guard,
            sink,
            chatbot,
            fraud,
            recommendation,
            llm,
            rt,
        }
    })
}

/// The system with the default settings.
pub fn system() -> &'static System {
    system_with(&[])
}

impl System {
    /// POSTs `body` as JSON to `url` with `headers`; the status and the reply (JSON, or the text
    /// as a JSON string when it is not JSON).
    pub fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.rt.block_on(async {
            let mut request = reqwest::Client::new().post(url).json(body);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request.send().await.expect("reachable");
            let status = response.status().as_u16();
            let text = response.text().await.expect("body");
            (
                status,
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
            )
        })
    }

    /// `POST /v1/chat` with `body` and `headers`.
    pub fn chat(
        &self,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        self.post(&format!("http://{}/v1/chat", self.chatbot), headers, body)
    }
}
