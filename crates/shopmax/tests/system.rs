//! `ask` and `load` against the real services, started in this process on 127.0.0.1 with real
//! HTTP between them, exporting over OTLP/gRPC to the built-in receiver (a [`TraceStore`] behind
//! an OTLP sink, as `shopmax up` runs it), from which the trace is read back over its query API.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use env_config::FromEnv as _;
use shopmax::ask::{Question, ask};
use shopmax::fetch::{Source, wait_for_trace};
use shopmax::load::{Length, LoadOptions, Mix, Pace, run};
use shopmax::store::{Limits, TraceStore};
use shopmax::trace::Kind;
use shopmax::waterfall;
use telemetry::ServiceInfo;
use test_harness::TestEnv;
use tokio::net::TcpListener;

const TOKEN: &str = "test-gateway-token-0123456789";

struct System {
    env: TestEnv,
    chatbot: SocketAddr,
    receiver: String,
    _sink: otlp_sink::OtlpSink,
}

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = service_kit::serve(listener, router).await;
    });
    addr
}

fn system() -> &'static System {
    static SYSTEM: OnceLock<System> = OnceLock::new();
    SYSTEM.get_or_init(|| {
        // The receiver's ports are bound first, so telemetry starts pointing at them.
        let grpc = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let http = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        grpc.set_nonblocking(true).expect("nonblocking");
        http.set_nonblocking(true).expect("nonblocking");
        let endpoint = format!("http://{}", grpc.local_addr().expect("addr"));
        let receiver = format!("http://{}", http.local_addr().expect("addr"));
        let env = TestEnv::start(
            ServiceInfo {
                name: "shopmax-cli-test",
                version: "0.0.0",
                site: "test",
            },
            |_| {
                test_harness::vars(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
                    ("OTEL_LOGS_EXPORTER", "none".into()),
                    ("OTEL_METRICS_EXPORTER", "none".into()),
                    ("TELEMETRY_INTERNAL_HOSTS", "127.0.0.1".into()),
                ])
            },
        );
        let (sink, chatbot) = env.rt.block_on(async {
            let store = TraceStore::new(Limits::default());
            let observer = store.clone();
            let sink = otlp_sink::OtlpSink::serve_with_options(
                TcpListener::from_std(grpc).expect("grpc"),
                TcpListener::from_std(http).expect("http"),
                otlp_sink::SinkOptions {
                    observer: Some(Arc::new(move |r| observer.add(r))),
                    routes: Some(store.routes()),
                    ..otlp_sink::SinkOptions::default()
                },
            )
            .await
            .expect("receiver");
            sink.set_count_only(true);

            let mock =
                mock_llm::AppState::from_config(mock_llm::Config::for_tests()).expect("mock");
            let llm = serve(mock_llm::app(mock)).await;
            let llm_url = format!("http://localhost:{}/v1", llm.port());
            let base = env_config::from_pairs(&[("LLM_BASE_URL", &llm_url)]);
            let fraud_config = fraud::Config::from_lookup(&base).expect("fraud config");
            let fraud = serve(fraud::app(fraud::AppState::from_config(&fraud_config))).await;
            let reco_config = recommendation::Config::from_lookup(&base).expect("reco config");
            let reco = recommendation::AppState::from_config(&reco_config, env.policy.clone())
                .expect("recommendation");
            // The mock answers at once, so the first attempt embeds the catalog.
            tokio::time::timeout(Duration::from_secs(5), reco.spawn_indexing())
                .await
                .expect("catalog embedded in time")
                .expect("indexing task");
            let reco_addr = serve(recommendation::app(reco.clone())).await;
            let fraud_url = format!("http://127.0.0.1:{}", fraud.port());
            let reco_url = format!("http://127.0.0.1:{}", reco_addr.port());
            let pairs = [
                ("LLM_BASE_URL", llm_url.as_str()),
                ("FRAUD_URL", fraud_url.as_str()),
                ("RECOMMENDATION_URL", reco_url.as_str()),
                ("CHATBOT_GATEWAY_TOKEN", TOKEN),
            ];
            let config = chatbot::Config::from_lookup(&env_config::from_pairs(&pairs))
                .expect("chatbot config");
            let state =
                chatbot::AppState::from_config(config, env.policy.clone()).expect("chatbot");
            (sink, serve(chatbot::app(state)).await)
        });
        System {
            env,
            chatbot,
            receiver,
            _sink: sink,
        }
    })
}

#[test]
fn ask_prints_the_answer_and_the_whole_trace_down_to_the_llm_span() {
    let system = system();
    let client = reqwest::Client::new();
    let question = Question {
        chatbot: format!("http://{}", system.chatbot),
        text: "What is the price of Samsung 65 QLED?".into(),
        customer: Some("cust-42".into()),
        session: None,
        stream: false,
    };
    let (answer, trace, complete) = system.env.rt.block_on(async {
        let answer = ask(&client, &question, |_| {}).await.expect("answer");
        let trace_id = answer.trace_id.clone().expect("trace id");
        let (trace, complete) = wait_for_trace(
            &client,
            &Source::Builtin(system.receiver.clone()),
            &trace_id,
            Some("POST /v1/chat"),
            Duration::from_secs(10),
        )
        .await
        .expect("trace");
        (answer, trace, complete)
    });
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.text,
        "The Samsung 65 QLED is priced at Rs 85000 and is available at the Mumbai warehouse."
    );
    assert!(complete, "the whole trace arrived");
    let root = trace.roots();
    assert_eq!(root.len(), 1);
    assert_eq!(root[0].name, "POST /v1/chat");
    assert_eq!(root[0].kind, Kind::Server);
    let llm = trace
        .spans
        .iter()
        .find(|s| s.name == "chat gpt-4o-mini")
        .expect("the LLM span");
    assert!(llm.attr("gen_ai.usage.input_tokens").is_some());
    let rendered = anstream::adapter::strip_str(&waterfall::render(&trace)).to_string();
    for needed in [
        "POST /v1/chat",
        "fraud.score",
        "retrieval catalog",
        "chat gpt-4o-mini",
        "HTTP 200",
        "model gpt-4o-mini",
        "tokens ",
        "cost ",
        "fraud allow",
        "grounded",
    ] {
        assert!(rendered.contains(needed), "{needed} in\n{rendered}");
    }
    // One line per span, under the header.
    assert_eq!(
        rendered.lines().count(),
        trace.spans.len() + 1,
        "{rendered}"
    );
}

#[test]
fn a_streamed_ask_hands_over_the_text_as_it_arrives_with_the_time_to_the_first_piece() {
    let system = system();
    let client = reqwest::Client::new();
    let question = Question {
        chatbot: format!("http://{}", system.chatbot),
        text: "Does OnePlus 11 support 5G?".into(),
        customer: None,
        session: None,
        stream: true,
    };
    let mut pieces = Vec::new();
    let answer = system
        .env
        .rt
        .block_on(ask(&client, &question, |t| pieces.push(t.to_owned())))
        .expect("answer");
    assert!(pieces.len() > 1, "{pieces:?}");
    assert_eq!(pieces.concat(), answer.text);
    assert!(
        answer.text.contains("Bangalore warehouse"),
        "{}",
        answer.text
    );
    assert!(answer.first_text.is_some_and(|t| t <= answer.took));
    assert!(answer.trace_id.is_some());
    assert_eq!(answer.reply["cost"]["currency"], "USD", "{}", answer.reply);
}

#[test]
fn a_short_load_run_adds_up_with_no_failures() {
    let system = system();
    let options = LoadOptions {
        chatbot: format!("http://{}", system.chatbot),
        pace: Pace::Closed(4),
        length: Length::Requests(24),
        mix: Mix::Catalog,
        gateway_token: Some(TOKEN.into()),
        progress: false,
    };
    let outcome = system.env.rt.block_on(run(&options));
    assert_eq!(outcome.requests, 24);
    assert_eq!(outcome.by_status.values().sum::<u64>(), 24);
    assert_eq!(
        outcome.latency_us.len(),
        24,
        "the histogram counts every request"
    );
    assert_eq!(outcome.failed(), 0, "{:?}", outcome.by_status);
    assert_eq!(outcome.slowest.len(), 5);
    assert!(outcome.slowest.iter().all(|s| s.trace_id.is_some()));
    let json = outcome.to_json();
    assert_eq!(json["requests"], 24);
    assert_eq!(json["latency_ms"]["count"], 24);

    let open = LoadOptions {
        pace: Pace::Open(40.0),
        length: Length::Requests(20),
        mix: Mix::Abusive,
        ..options
    };
    let outcome = system.env.rt.block_on(run(&open));
    assert_eq!(outcome.requests + outcome.skipped, 20);
    assert_eq!(outcome.failed(), 0, "{:?}", outcome.by_status);
    assert!(
        outcome.by_status.get("403").copied().unwrap_or(0) > 0,
        "fraud stops the injections: {:?}",
        outcome.by_status
    );
}

#[test]
fn a_trace_the_receiver_does_not_have_is_not_found() {
    let system = system();
    let client = reqwest::Client::new();
    let result = system.env.rt.block_on(shopmax::fetch::fetch(
        &client,
        &Source::Builtin(system.receiver.clone()),
        "0af7651916cd43dd8448eb211c80319c",
    ));
    assert!(
        matches!(result, Err(shopmax::fetch::FetchError::NotFound(_))),
        "{result:?}"
    );
}
