//! Handler tests with fake dependencies, through the router (`oneshot`).

use env_config::FromEnv as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chatbot::downstream::{DownstreamError, FraudScorer, HttpFraudScorer, Recommender, Service};
use chatbot::{AppState, Config, app};
use contract::chat::ChatReply;
use contract::fraud::{
    Assessment as FraudVerdict, Decision, Reason as FraudReason, Rule, ScoreRequest,
};
use contract::recommendation::{RecommendResponse as Recommendations, ScoredProduct};
use llm_client::{ChatRequest, ChatResponse, ChatStream, LlmClient, LlmError, StreamEvent, Usage};
use telemetry::{PropagationPolicy, TracedClient};
use tower::ServiceExt as _;

#[derive(Debug, Default)]
struct FakeLlm {
    fail: Option<LlmError>,
    seen: Mutex<Vec<ChatRequest>>,
    /// Answers only after this long.
    delay: Option<Duration>,
    /// Streams a delta every 20 ms and never finishes.
    drip: bool,
}

fn response(content: &str) -> ChatResponse {
    ChatResponse {
        id: "chatcmpl-1".into(),
        model: "gpt-4o-mini".into(),
        content: content.into(),
        finish_reason: Some("stop".into()),
        usage: Usage {
            prompt_tokens: 68,
            completion_tokens: 24,
            total_tokens: 92,
            cached_prompt_tokens: None,
        },
        cost: Some(usd(0.000_024_6)),
        span_context: None,
    }
}

fn usd(amount: f64) -> contract::Cost {
    contract::Cost {
        amount,
        currency: "USD".into(),
    }
}

#[async_trait::async_trait]
impl LlmClient for FakeLlm {
    fn model(&self) -> &str {
        "gpt-4o-mini"
    }
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        self.seen.lock().expect("seen").push(request);
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        match &self.fail {
            Some(e) => Err(e.clone()),
            None => Ok(response("The answer.")),
        }
    }
    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        self.seen.lock().expect("seen").push(request);
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        if self.drip {
            let drops = futures_util::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((Ok(StreamEvent::Delta(".".into())), ()))
            });
            return Ok(Box::pin(drops));
        }
        let events = vec![
            Ok(StreamEvent::Delta("The ".into())),
            Ok(StreamEvent::Delta("answer.".into())),
            Ok(StreamEvent::Done(Box::new(response("The answer.")))),
        ];
        Ok(Box::pin(futures_util::stream::iter(events)))
    }
}

#[derive(Debug)]
struct FakeFraud(Result<FraudVerdict, DownstreamError>);

#[async_trait::async_trait]
impl FraudScorer for FakeFraud {
    async fn score(&self, _request: &ScoreRequest) -> Result<FraudVerdict, DownstreamError> {
        self.0.clone()
    }
}

#[derive(Debug)]
struct FakeRecommender(Result<Recommendations, DownstreamError>);

#[async_trait::async_trait]
impl Recommender for FakeRecommender {
    async fn recommend(&self, _q: &str, _k: usize) -> Result<Recommendations, DownstreamError> {
        self.0.clone()
    }
}

fn allow() -> Result<FraudVerdict, DownstreamError> {
    Ok(FraudVerdict {
        risk_score: 0.02,
        decision: Decision::Allow,
        reasons: vec![],
    })
}

fn samsung() -> Result<Recommendations, DownstreamError> {
    let catalog = catalog::Catalog::embedded();
    let product = catalog
        .get("samsung-65-qled")
        .expect("seed product")
        .clone();
    Ok(Recommendations {
        products: vec![ScoredProduct {
            product,
            score: 0.91,
        }],
        related: vec![],
        embedding_model: "text-embedding-3-small".into(),
        spend: contract::Spend {
            priced: Some(usd(0.000_000_2)),
            unpriced_calls: 0,
        },
    })
}

struct Setup {
    llm: Arc<FakeLlm>,
    fraud: Result<FraudVerdict, DownstreamError>,
    recs: Result<Recommendations, DownstreamError>,
    fail_open: bool,
    request_timeout: Option<Duration>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            llm: Arc::new(FakeLlm::default()),
            fraud: allow(),
            recs: samsung(),
            fail_open: true,
            request_timeout: None,
        }
    }
}

impl Setup {
    fn router(&self) -> axum::Router {
        let mut config = Config::from_lookup(&|_| None).expect("defaults");
        config.fraud_fail_open = self.fail_open;
        config.downstream_timeout = Duration::from_millis(100);
        if let Some(timeout) = self.request_timeout {
            config.request_timeout = timeout;
        }
        app(AppState {
            llm: self.llm.clone(),
            fraud: Arc::new(FakeFraud(self.fraud.clone())),
            recommender: Arc::new(FakeRecommender(self.recs.clone())),
            config: Arc::new(config),
        })
    }

    async fn post(&self, content_type: Option<&str>, body: &str) -> (StatusCode, String) {
        let mut request = Request::post("/v1/chat");
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = self
            .router()
            .oneshot(request.body(Body::from(body.to_owned())).expect("request"))
            .await
            .expect("response");
        let (status, bytes) = service_kit::testing::body_bytes(response).await;
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn ask(&self, body: serde_json::Value) -> (StatusCode, serde_json::Value) {
        let (status, text) = self.post(Some("application/json"), &body.to_string()).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }
}

fn question() -> serde_json::Value {
    serde_json::json!({ "question": "What is the price of Samsung 65 QLED?", "customer_id": "cust-1" })
}

#[tokio::test]
async fn chat_answers_with_products_usage_and_session() {
    let setup = Setup::default();
    let (status, body) = setup.ask(question()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reply: ChatReply = serde_json::from_value(body).expect("reply shape");
    assert_eq!(reply.answer, "The answer.");
    assert_eq!(reply.products[0].id, "samsung-65-qled");
    assert_eq!(
        reply.fraud.as_ref().map(|f| f.decision.as_str()),
        Some("allow")
    );
    assert_eq!(reply.usage.prompt_tokens, 68);
    assert!(reply.degraded.is_empty());
    assert!(reply.session_id.as_str().starts_with("sess-"));
    let seen = setup.llm.seen.lock().expect("seen");
    assert!(
        seen[0].messages[0]
            .content
            .contains("- Samsung 65 QLED | category:")
    );
    assert_eq!(
        seen[0].messages[1].content,
        "What is the price of Samsung 65 QLED?"
    );
}

#[tokio::test]
async fn chat_reply_totals_the_cost_of_the_chat_and_the_query_embedding() {
    let (status, body) = Setup::default().ask(question()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cost"]["currency"], "USD");
    let amount = body["cost"]["amount"].as_f64().expect("an amount");
    assert!((amount - 0.000_024_8).abs() < 1e-12, "{amount}");
}

#[tokio::test]
async fn chat_reply_cost_is_null_when_any_call_is_unpriced_or_unaccounted() {
    let mut unpriced_embedding = samsung().expect("recs");
    unpriced_embedding.spend = contract::Spend {
        priced: None,
        unpriced_calls: 1,
    };
    for setup in [
        Setup {
            recs: Ok(unpriced_embedding),
            ..Setup::default()
        },
        // Recommendation failed: whatever it spent is unknown.
        Setup {
            recs: Err(DownstreamError::Timeout {
                service: Service::Recommendation,
            }),
            ..Setup::default()
        },
    ] {
        let (status, body) = setup.ask(question()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["cost"].is_null(), "{body}");
    }
}

#[rstest::rstest]
#[case::spaces("  ")]
#[case::nothing("")]
#[case::control_characters_only("\u{0}\t\u{7f}")]
#[tokio::test]
async fn chat_returns_400_when_question_is_empty(#[case] question: &str) {
    let (status, body) = Setup::default()
        .ask(serde_json::json!({ "question": question }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_request");
}

#[tokio::test]
async fn chat_returns_400_when_question_is_huge() {
    let huge = "a".repeat(contract::chat::MAX_QUESTION_CHARS + 1);
    let (status, _) = Setup::default()
        .ask(serde_json::json!({ "question": huge }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn chat_returns_413_when_body_is_oversized() {
    let huge = "a".repeat(service_kit::MAX_BODY_BYTES);
    let (status, _) = Setup::default()
        .ask(serde_json::json!({ "question": huge }))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn chat_returns_415_without_json_content_type() {
    let (status, text) = Setup::default().post(None, &question().to_string()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(text.contains("unsupported_media_type"));
}

#[tokio::test]
async fn chat_returns_400_when_json_is_malformed() {
    let (status, text) = Setup::default()
        .post(Some("application/json"), "{\"question\":")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("invalid_request"));
}

#[tokio::test]
async fn chat_returns_422_for_unknown_fields_and_bad_ids() {
    let setup = Setup::default();
    let (status, _) = setup
        .ask(serde_json::json!({ "question": "q", "prompt": "x" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = setup
        .ask(serde_json::json!({ "question": "q", "customer_id": "a b" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["error"]["message"],
        "customer_id must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', ':' or '-'"
    );
}

#[tokio::test]
async fn chat_returns_403_with_reasons_when_fraud_blocks() {
    let setup = Setup {
        fraud: Ok(FraudVerdict {
            risk_score: 0.95,
            decision: Decision::Block,
            reasons: vec![FraudReason {
                rule: Rule::PromptInjection,
                detail: "ignore previous instructions".into(),
                score: 0.9,
            }],
        }),
        ..Setup::default()
    };
    let (status, body) = setup.ask(question()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "blocked");
    assert_eq!(body["fraud"]["decision"], "block");
    assert_eq!(body["fraud"]["reasons"][0]["rule"], "prompt_injection");
    assert!(
        setup.llm.seen.lock().expect("seen").is_empty(),
        "no LLM call when blocked"
    );
}

#[tokio::test]
async fn chat_degrades_when_recommendation_is_down() {
    let setup = Setup {
        recs: Err(DownstreamError::Timeout {
            service: Service::Recommendation,
        }),
        ..Setup::default()
    };
    let (status, body) = setup.ask(question()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["degraded"],
        serde_json::json!(["recommendation_unavailable"])
    );
    assert_eq!(body["products"], serde_json::json!([]));
    // The model is told the lookup failed, so it does not claim the product does not exist.
    let seen = setup.llm.seen.lock().expect("seen");
    assert!(
        seen[0].messages[0]
            .content
            .contains(catalog::LOOKUP_UNAVAILABLE)
    );
}

#[rstest::rstest]
#[case::rejected(DownstreamError::Rejected { service: Service::Fraud, status: 422 })]
#[case::unreadable_verdict(DownstreamError::Invalid { service: Service::Fraud })]
#[tokio::test]
async fn chat_returns_502_and_does_not_fail_open_when_fraud_breaks_the_contract(
    #[case] error: DownstreamError,
) {
    let setup = Setup {
        fraud: Err(error),
        ..Setup::default()
    };
    let (status, body) = setup.ask(question()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"]["code"], "fraud_unavailable");
    assert!(setup.llm.seen.lock().expect("seen").is_empty());
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors() {
    let setup = Setup::default();
    for (method, path, status) in [
        ("GET", "/v1/chat", StatusCode::METHOD_NOT_ALLOWED),
        ("POST", "/v2/chat", StatusCode::NOT_FOUND),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let response = setup.router().oneshot(request).await.expect("response");
        let (got, json) = service_kit::testing::json_body(response).await;
        assert_eq!(got, status);
        assert!(json["error"]["code"].is_string());
    }
}

#[test]
fn zero_timeouts_and_token_budgets_are_refused_at_start_up() {
    for key in [
        "CHATBOT_DOWNSTREAM_TIMEOUT_MS",
        "CHATBOT_MAX_ANSWER_TOKENS",
        "LLM_TIMEOUT_MS",
    ] {
        let lookup = env_config::from_pairs(&[(key, "0")]);
        let error = Config::from_lookup(&lookup).expect_err(key);
        assert_eq!(error.key, key);
    }
}

#[test]
fn downstream_urls_that_are_not_http_are_refused_at_start_up() {
    for key in ["FRAUD_URL", "RECOMMENDATION_URL", "LLM_BASE_URL"] {
        let lookup = env_config::from_pairs(&[(key, "notaurl")]);
        let error = Config::from_lookup(&lookup).expect_err(key);
        assert_eq!(error.key, key);
    }
}

#[tokio::test]
async fn chat_fails_open_or_closed_when_fraud_is_down() {
    let down = || {
        Err(DownstreamError::Unavailable {
            service: Service::Fraud,
            detail: "connect".into(),
        })
    };
    let open = Setup {
        fraud: down(),
        ..Setup::default()
    };
    let (status, body) = open.ask(question()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["degraded"], serde_json::json!(["fraud_unavailable"]));
    assert!(body["fraud"].is_null());

    let closed = Setup {
        fraud: down(),
        fail_open: false,
        ..Setup::default()
    };
    let (status, body) = closed.ask(question()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "fraud_unavailable");
}

#[tokio::test]
async fn chat_returns_502_or_504_when_the_llm_fails() {
    for (error, status, code) in [
        (
            LlmError::Status { status: 500 },
            StatusCode::BAD_GATEWAY,
            "llm_unavailable",
        ),
        (
            LlmError::RateLimited,
            StatusCode::BAD_GATEWAY,
            "llm_unavailable",
        ),
        (
            LlmError::Timeout,
            StatusCode::GATEWAY_TIMEOUT,
            "llm_timeout",
        ),
    ] {
        let setup = Setup {
            llm: Arc::new(FakeLlm {
                fail: Some(error),
                ..FakeLlm::default()
            }),
            ..Setup::default()
        };
        let (got, body) = setup.ask(question()).await;
        assert_eq!(got, status);
        assert_eq!(body["error"]["code"], code);
        assert!(
            !body.to_string().contains("500"),
            "no internals in the body: {body}"
        );
    }
}

#[tokio::test]
async fn chat_streams_meta_deltas_and_done_as_sse() {
    let setup = Setup::default();
    let mut body = question();
    body["stream"] = serde_json::json!(true);
    let (status, text) = setup
        .post(Some("application/json"), &body.to_string())
        .await;
    assert_eq!(status, StatusCode::OK);
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events, vec!["meta", "delta", "delta", "done"], "{text}");
    assert!(text.contains(r#""text":"The ""#));
    assert!(text.contains(r#""prompt_tokens":68"#));
    assert!(text.contains("samsung-65-qled"));
}

/// A stand-in fraud service that answers every score request with `body`.
async fn fraud_answering(body: &'static str) -> HttpFraudScorer {
    let router = axum::Router::new().route(
        contract::fraud::PATH,
        axum::routing::post(move || async move { ([("content-type", "application/json")], body) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let policy = PropagationPolicy {
        internal_hosts: vec!["127.0.0.1".into()],
        trace_headers_to_external: false,
    };
    let client = TracedClient::new(reqwest::Client::new(), policy);
    HttpFraudScorer::new(client, &format!("http://{addr}"), Duration::from_secs(2))
}

fn score_request() -> ScoreRequest {
    ScoreRequest {
        customer_id: "cust-1".parse().expect("id"),
        session_id: "sess-1".parse().expect("id"),
        question: "Does OnePlus 11 support 5G?".into(),
        client_address: None,
    }
}

#[tokio::test]
async fn a_verdict_this_build_cannot_read_is_invalid_not_unavailable() {
    for body in [
        r#"{"risk_score":0.9,"decision":"block","reasons":[{"rule":"device_fingerprint","detail":"x","score":0.9}]}"#,
        r#"{"risk_score":0.6,"decision":"escalate","reasons":[]}"#,
    ] {
        let error = fraud_answering(body)
            .await
            .score(&score_request())
            .await
            .expect_err(body);
        assert_eq!(
            error,
            DownstreamError::Invalid {
                service: Service::Fraud
            },
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_verdict_without_reasons_or_scores_is_read_with_defaults() {
    let verdict = fraud_answering(
        r#"{"risk_score":0.9,"decision":"block","reasons":[{"rule":"abuse","detail":"x"}]}"#,
    )
    .await
    .score(&score_request())
    .await
    .expect("readable");
    assert_eq!(verdict.decision, Decision::Block);
    assert_eq!(verdict.reasons[0].rule, Rule::Abuse);
    let verdict = fraud_answering(r#"{"risk_score":0.1,"decision":"allow"}"#)
        .await
        .score(&score_request())
        .await
        .expect("readable");
    assert!(verdict.reasons.is_empty());
}

#[tokio::test]
async fn chat_returns_504_deadline_exceeded_when_the_answer_misses_the_request_deadline() {
    let setup = Setup {
        llm: Arc::new(FakeLlm {
            delay: Some(Duration::from_secs(30)),
            ..FakeLlm::default()
        }),
        request_timeout: Some(Duration::from_millis(100)),
        ..Setup::default()
    };
    let started = std::time::Instant::now();
    let (status, body) = setup.ask(question()).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error"]["code"], "deadline_exceeded");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the deadline cut the wait"
    );
}

#[tokio::test]
async fn a_stream_that_drips_forever_is_cut_at_the_request_deadline_with_an_error_event() {
    let setup = Setup {
        llm: Arc::new(FakeLlm {
            drip: true,
            ..FakeLlm::default()
        }),
        request_timeout: Some(Duration::from_millis(300)),
        ..Setup::default()
    };
    let mut body = question();
    body["stream"] = serde_json::json!(true);
    let (status, text) = tokio::time::timeout(
        Duration::from_secs(10),
        setup.post(Some("application/json"), &body.to_string()),
    )
    .await
    .expect("the stream ended at the deadline");
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("event: delta"), "{text}");
    let last = text.trim_end().rsplit("\n\n").next().unwrap_or_default();
    assert!(
        last.contains("event: error") && last.contains("deadline_exceeded"),
        "the stream ends with a deadline error: {last}"
    );
}

#[tokio::test]
async fn a_downstream_reply_larger_than_the_cap_is_invalid_and_not_read_whole() {
    let big: &'static str = Box::leak(
        format!(
            r#"{{"risk_score":0.0,"decision":"allow","reasons":[],"pad":"{}"}}"#,
            "x".repeat(4096)
        )
        .into_boxed_str(),
    );
    let fraud = fraud_answering(big).await;
    // The same reply is read when it fits.
    assert!(
        fraud
            .clone()
            .with_max_body(8192)
            .score(&score_request())
            .await
            .is_ok()
    );
    let error = fraud
        .with_max_body(1024)
        .score(&score_request())
        .await
        .expect_err("too large");
    assert_eq!(
        error,
        DownstreamError::Invalid {
            service: Service::Fraud
        }
    );
}
