//! Handler, readiness, batching and span tests against a fake, deterministic embedding model.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use env_config::FromEnv as _;
use llm_client::Embeddings;
use rstest::rstest;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::*;

const DIMS: usize = 256;
const FAKE_MODEL: &str = "fake-bow-256";

/// A hashed bag of words: texts sharing words get similar vectors, with no model and no network.
fn bag_of_words(text: &str) -> Vec<f32> {
    let mut v = vec![0.0; DIMS];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        // FNV-1a: stable across runs and platforms, unlike the std hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in word.to_lowercase().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let slot = usize::try_from(h % DIMS as u64).unwrap_or(0);
        v[slot] += 1.0;
    }
    v
}

#[derive(Debug, Default)]
struct FakeEmbedder {
    calls: AtomicUsize,
    batch_sizes: Mutex<Vec<usize>>,
    /// Fail this many calls (as if the server were not up yet), then work.
    fail_first: AtomicUsize,
    /// When set, every call fails with this error.
    failure: Mutex<Option<LlmError>>,
    /// When set, every call takes this long.
    delay: Mutex<Option<Duration>>,
    /// When set, answers with this many vectors whatever was asked.
    vectors_override: Mutex<Option<usize>>,
}

impl FakeEmbedder {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn fail_with(&self, e: LlmError) {
        *self.failure.lock().expect("lock") = Some(e);
    }
}

/// What the fake charges per input embedded.
const FAKE_COST_PER_INPUT: f64 = 0.000_001;

#[async_trait::async_trait]
impl EmbeddingClient for FakeEmbedder {
    fn model(&self) -> &str {
        FAKE_MODEL
    }

    async fn embed(&self, inputs: &[String]) -> Result<Embeddings, LlmError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.batch_sizes.lock().expect("lock").push(inputs.len());
        let delay = *self.delay.lock().expect("lock");
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(LlmError::Unreachable);
        }
        if let Some(e) = self.failure.lock().expect("lock").clone() {
            return Err(e);
        }
        let count = self
            .vectors_override
            .lock()
            .expect("lock")
            .unwrap_or(inputs.len());
        Ok(Embeddings {
            vectors: inputs
                .iter()
                .cycle()
                .take(count)
                .map(|t| bag_of_words(t))
                .collect(),
            model: FAKE_MODEL.to_owned(),
            input_tokens: None,
            cost: Some(llm_client::Cost {
                amount: FAKE_COST_PER_INPUT
                    * f64::from(u32::try_from(inputs.len()).unwrap_or(u32::MAX)),
                currency: "USD".into(),
            }),
        })
    }
}

fn config() -> Config {
    let mut config = Config::from_lookup(&|_| None).expect("default config");
    config.index_retry_initial = Duration::from_millis(1);
    config.index_retry_max = Duration::from_millis(5);
    config
}

fn product(id: &str, name: &str, category: &str, features: &[&str]) -> Product {
    Product {
        id: id.to_owned(),
        name: name.to_owned(),
        brand: name.split(' ').next().unwrap_or("Acme").to_owned(),
        category: category.to_owned(),
        price_inr: 10_000,
        warehouse: "Pune".to_owned(),
        stock: 3,
        features: features.iter().map(|f| (*f).to_owned()).collect(),
    }
}

fn catalog_of(products: &[Product]) -> Catalog {
    Catalog::from_json(&serde_json::to_string(products).expect("json")).expect("catalog")
}

/// Five televisions, two phones, one laptop.
fn shop() -> Catalog {
    catalog_of(&[
        product(
            "samsung-65-qled",
            "Samsung 65 QLED",
            "Television",
            &["QLED display", "HDR10+"],
        ),
        product(
            "oneplus-11",
            "OnePlus 11",
            "Smartphone",
            &["5G connectivity"],
        ),
        product(
            "lg-55-oled",
            "LG 55 OLED",
            "Television",
            &["OLED display", "Dolby Vision"],
        ),
        product(
            "sony-50-bravia",
            "Sony 50 Bravia",
            "Television",
            &["LED display", "Google TV"],
        ),
        product("dell-xps-13", "Dell XPS 13", "Laptop", &["13-inch display"]),
        product(
            "tcl-43-4k",
            "TCL 43 4K",
            "Television",
            &["LED display", "HDR10"],
        ),
        product("mi-32-hd", "Mi 32 HD", "Television", &["HD ready display"]),
        product(
            "pixel-8",
            "Pixel 8",
            "Smartphone",
            &["5G connectivity", "Tensor G3"],
        ),
    ])
}

fn numbered(n: usize) -> Catalog {
    let products: Vec<Product> = (0..n)
        .map(|i| {
            product(
                &format!("p-{i}"),
                &format!("Acme Model {i}"),
                "Gadget",
                &["thing"],
            )
        })
        .collect();
    catalog_of(&products)
}

async fn ready_state(catalog: Catalog) -> (AppState, Arc<FakeEmbedder>) {
    let fake = Arc::new(FakeEmbedder::default());
    let state = AppState::new(&config(), catalog, fake.clone());
    state.build_index(1).await.expect("index");
    (state, fake)
}

async fn call(router: &Router, request: Request<Body>) -> (StatusCode, HeaderMapLite, Value) {
    let response = router.clone().oneshot(request).await.expect("response");
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let (status, json) = service_kit::testing::json_body(response).await;
    (status, headers, json)
}

type HeaderMapLite = HashMap<String, String>;

fn post(body: impl Into<Body>, content_type: Option<&str>) -> Request<Body> {
    let mut req = Request::post("/v1/recommend");
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.body(body.into()).expect("request")
}

async fn recommend_json(router: &Router, body: Value) -> (StatusCode, Value) {
    let (status, _, json) = call(router, post(body.to_string(), Some("application/json"))).await;
    (status, json)
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|p| {
            p.get("product")
                .unwrap_or(p)
                .get("id")
                .and_then(Value::as_str)
                .expect("id")
                .to_owned()
        })
        .collect()
}

#[test]
fn config_defaults_and_overrides() {
    let config = Config::from_lookup(&|_| None).expect("config");
    assert_eq!(config.port, 8081);
    assert_eq!(config.embed_batch, 16);
    assert_eq!(config.embed_timeout, Duration::from_secs(10));
    assert_eq!(config.index_retry_initial, Duration::from_millis(500));
    assert_eq!(config.index_retry_max, Duration::from_secs(30));
    assert_eq!(config.llm.base_url, "http://localhost:8090/v1");

    let vars: HashMap<&str, &str> = HashMap::from([
        ("PORT", "9001"),
        ("RECOMMENDATION_EMBED_BATCH", "4"),
        ("RECOMMENDATION_EMBED_TIMEOUT_MS", "250"),
        ("LLM_EMBEDDING_MODEL", "nomic-embed-text"),
    ]);
    let config = Config::from_lookup(&|k| vars.get(k).map(|v| (*v).to_owned())).expect("config");
    assert_eq!(config.port, 9001);
    assert_eq!(config.embed_batch, 4);
    assert_eq!(config.embed_timeout, Duration::from_millis(250));
    assert_eq!(config.llm.embedding_model, "nomic-embed-text");
}

#[rstest]
#[case("RECOMMENDATION_EMBED_BATCH", "0")]
#[case("RECOMMENDATION_EMBED_BATCH", "many")]
#[case("RECOMMENDATION_EMBED_TIMEOUT_MS", "0")]
#[case("RECOMMENDATION_INDEX_RETRY_INITIAL_MS", "60000")]
#[case("PORT", "-1")]
#[case("LLM_BASE_URL", "ftp://x")]
fn config_rejects_bad_values(#[case] key: &str, #[case] value: &str) {
    let err = Config::from_lookup(&|k| (k == key).then(|| value.to_owned())).expect_err("fails");
    assert_eq!(err.key, key);
}

#[rstest]
#[case("price of Samsung 65 QLED", "samsung-65-qled")]
#[case("What is the price of Samsung 65 QLED?", "samsung-65-qled")]
#[case("Does OnePlus 11 support 5G?", "oneplus-11-5g")]
#[tokio::test]
async fn ranking_returns_the_named_product_first(#[case] query: &str, #[case] expected: &str) {
    let (state, _) = ready_state(Catalog::embedded()).await;
    let (status, body) = recommend_json(&app(state), json!({ "query": query })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body["products"])[0], expected, "{body}");
    assert_eq!(body["embedding_model"], FAKE_MODEL);
    let scores: Vec<f64> = body["products"]
        .as_array()
        .expect("products")
        .iter()
        .map(|p| p["score"].as_f64().expect("score"))
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(scores[0] > 0.3 && scores[0] <= 1.0 + 1e-6, "{scores:?}");
    // The product comes back whole.
    let first: Product =
        serde_json::from_value(body["products"][0]["product"].clone()).expect("a product");
    assert_eq!(Some(&first), Catalog::embedded().get(expected));
}

#[rstest]
#[case(None, 3)]
#[case(Some(1), 1)]
#[case(Some(5), 5)]
#[case(Some(10), 8)]
#[tokio::test]
async fn top_k_limits_the_products(#[case] top_k: Option<usize>, #[case] expected: usize) {
    let (state, _) = ready_state(shop()).await;
    let mut body = json!({ "query": "OLED television" });
    if let Some(k) = top_k {
        body["top_k"] = json!(k);
    }
    let (status, body) = recommend_json(&app(state), body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["products"].as_array().expect("products").len(),
        expected
    );
}

#[tokio::test]
async fn a_recommendation_reports_what_its_query_embedding_cost() {
    let (state, _) = ready_state(shop()).await;
    let (status, body) = recommend_json(&app(state), json!({ "query": "OLED television" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["spend"]["priced"]["currency"], "USD");
    assert_eq!(body["spend"]["priced"]["amount"], FAKE_COST_PER_INPUT);
    assert!(body["spend"].get("unpriced_calls").is_none(), "{body}");
}

#[rstest]
#[case(json!({"query": "tv", "top_k": 0}))]
#[case(json!({"query": "tv", "top_k": 11}))]
#[case(json!({"query": "tv", "top_k": -1}))]
#[case(json!({"query": "tv", "top_k": "3"}))]
#[case(json!({"query": ""}))]
#[case(json!({"query": "  \n "}))]
#[case(json!({"query": "q".repeat(2001)}))]
#[case(json!({"query": "tv", "user": "x"}))]
#[case(json!({"top_k": 3}))]
#[case(json!({"query": 42}))]
#[tokio::test]
async fn invalid_requests_are_422(#[case] body: Value) {
    let (state, fake) = ready_state(shop()).await;
    let before = fake.calls();
    let (status, answer) = recommend_json(&app(state), body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_field");
    // Bad input never costs an embeddings call.
    assert_eq!(fake.calls(), before);
}

#[tokio::test]
async fn longest_query_is_accepted() {
    let (state, _) = ready_state(shop()).await;
    let (status, body) = recommend_json(&app(state), json!({"query": "é".repeat(2000)})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn transport_errors_are_4xx() {
    let (state, _) = ready_state(shop()).await;
    let router = app(state);
    let (status, _, body) = call(&router, post(r#"{"query":"tv"}"#, Some("text/plain"))).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let (status, _, body) = call(&router, post("{oops", Some("application/json"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let big = vec![b' '; service_kit::MAX_BODY_BYTES + 1];
    let (status, _, _) = call(&router, post(big, Some("application/json"))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn related_lists_other_products_of_the_top_category() {
    let (state, _) = ready_state(shop()).await;
    let router = app(state);
    let (status, body) =
        recommend_json(&router, json!({"query": "Samsung 65 QLED", "top_k": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body["products"]), ["samsung-65-qled"]);
    let related = body["related"].as_array().expect("related");
    assert_eq!(related.len(), 3, "{body}");
    for p in related {
        assert_eq!(p["category"], "Television", "{body}");
        assert_ne!(p["id"], "samsung-65-qled");
    }

    // Nothing listed twice, and never more related products than the category has left.
    let (_, body) = recommend_json(&router, json!({"query": "Samsung 65 QLED", "top_k": 4})).await;
    let listed = ids(&body["products"]);
    let related = ids(&body["related"]);
    assert!(related.iter().all(|id| !listed.contains(id)), "{body}");
    let tvs_listed = body["products"]
        .as_array()
        .expect("products")
        .iter()
        .filter(|p| p["product"]["category"] == "Television")
        .count();
    assert_eq!(related.len(), (5 - tvs_listed).min(3), "{body}");
}

#[tokio::test]
async fn not_ready_answers_503_until_the_catalog_is_embedded() {
    let fake = Arc::new(FakeEmbedder::default());
    let state = AppState::new(&config(), shop(), fake.clone());
    let router = app(state.clone());

    let (status, headers, body) =
        call(&router, post(r#"{"query":"tv"}"#, Some("application/json"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "not_ready");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(fake.calls(), 0);
    let readyz = || {
        Request::get("/readyz")
            .body(Body::empty())
            .expect("request")
    };
    let (status, _, _) = call(&router, readyz()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    state.build_index(1).await.expect("index");
    let (status, _, _) = call(&router, readyz()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) =
        call(&router, post(r#"{"query":"tv"}"#, Some("application/json"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn background_indexing_retries_until_the_llm_server_is_up() {
    let fake = Arc::new(FakeEmbedder::default());
    fake.fail_first.store(3, Ordering::SeqCst);
    let state = AppState::new(&config(), Catalog::embedded(), fake.clone());
    let router = app(state.clone());
    assert!(!state.is_ready());

    let task = state.spawn_indexing();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("indexing finishes")
        .expect("task");
    assert!(state.is_ready());
    // Three attempts fail at their first batch; the fourth embeds every batch.
    let batches = Catalog::embedded().products().len().div_ceil(16);
    assert_eq!(fake.calls(), 3 + batches);
    let (status, _, _) = call(
        &router,
        Request::get("/readyz")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_failed_index_attempt_leaves_the_service_not_ready() {
    let fake = Arc::new(FakeEmbedder::default());
    fake.fail_with(LlmError::Status { status: 500 });
    let state = AppState::new(&config(), shop(), fake.clone());
    assert_eq!(
        state.build_index(1).await,
        Err(LlmError::Status { status: 500 })
    );
    assert!(!state.is_ready());
    // Wrong vector count is a failure too, not a half-built index.
    *fake.failure.lock().expect("lock") = None;
    *fake.vectors_override.lock().expect("lock") = Some(1);
    assert!(matches!(
        state.build_index(2).await,
        Err(LlmError::InvalidResponse(_))
    ));
    assert!(!state.is_ready());
}

#[rstest]
#[case(2, 16, vec![2])]
#[case(16, 16, vec![16])]
#[case(17, 16, vec![16, 1])]
#[case(40, 16, vec![16, 16, 8])]
#[case(5, 2, vec![2, 2, 1])]
#[tokio::test]
async fn catalog_is_embedded_in_batches(
    #[case] products: usize,
    #[case] batch: usize,
    #[case] expected: Vec<usize>,
) {
    let fake = Arc::new(FakeEmbedder::default());
    let mut config = config();
    config.embed_batch = batch;
    let state = AppState::new(&config, numbered(products), fake.clone());
    state.build_index(1).await.expect("index");
    assert_eq!(fake.calls(), products.div_ceil(batch));
    assert_eq!(*fake.batch_sizes.lock().expect("lock"), expected);
    assert_eq!(state.index().map(VectorIndex::len), Some(products));
}

#[rstest]
#[case(LlmError::Unreachable, StatusCode::BAD_GATEWAY, "upstream_error")]
#[case(LlmError::Status { status: 500 }, StatusCode::BAD_GATEWAY, "upstream_error")]
#[case(LlmError::RateLimited, StatusCode::BAD_GATEWAY, "upstream_error")]
#[case(LlmError::InvalidResponse("secret upstream detail".into()), StatusCode::BAD_GATEWAY, "upstream_error")]
#[case(LlmError::Timeout, StatusCode::GATEWAY_TIMEOUT, "upstream_timeout")]
#[tokio::test]
async fn embedder_failure_is_a_json_5xx(
    #[case] error: LlmError,
    #[case] status: StatusCode,
    #[case] code: &str,
) {
    let (state, fake) = ready_state(shop()).await;
    fake.fail_with(error);
    let (got, body) = recommend_json(&app(state), json!({"query": "tv"})).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code);
    let message = body["error"]["message"].as_str().expect("message");
    assert!(!message.contains("secret"), "{message}");
}

#[tokio::test]
async fn a_slow_embedder_gets_504_not_a_hang() {
    let fake = Arc::new(FakeEmbedder::default());
    let mut config = config();
    config.embed_timeout = Duration::from_millis(50);
    let state = AppState::new(&config, shop(), fake.clone());
    state.build_index(1).await.expect("index");
    *fake.delay.lock().expect("lock") = Some(Duration::from_secs(30));
    let started = std::time::Instant::now();
    let (status, body) = recommend_json(&app(state), json!({"query": "tv"})).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_query_embedding_of_the_wrong_shape_is_502() {
    let (state, fake) = ready_state(shop()).await;
    *fake.vectors_override.lock().expect("lock") = Some(2);
    let (status, body) = recommend_json(&app(state.clone()), json!({"query": "tv"})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    *fake.vectors_override.lock().expect("lock") = Some(0);
    let (status, _) = recommend_json(&app(state), json!({"query": "tv"})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

mod spans {
    use super::*;
    use opentelemetry::trace::{SpanId, SpanKind};
    use opentelemetry_sdk::trace::SpanData;
    use test_harness::SpanCapture;
    use tracing::Instrument as _;

    fn attr(span: &SpanData, key: &str) -> Option<String> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }

    #[tokio::test]
    async fn catalog_embed_is_a_root_span_even_inside_another_span() {
        let capture = SpanCapture::start();
        let fake = Arc::new(FakeEmbedder::default());
        let mut config = config();
        config.embed_batch = 2;
        let state = AppState::new(&config, numbered(5), fake);
        let outer = tracing::info_span!("outer");
        state.build_index(1).instrument(outer).await.expect("index");
        let spans = capture.finished_spans();
        let embed = spans
            .iter()
            .find(|s| s.name == "catalog.embed")
            .expect("catalog.embed span");
        assert_eq!(embed.parent_span_id, SpanId::INVALID, "a root span");
        assert_eq!(embed.span_kind, SpanKind::Internal);
        assert_eq!(attr(embed, "catalog.size").as_deref(), Some("5"));
        assert_eq!(
            attr(embed, "catalog.embed.batch_size").as_deref(),
            Some("2")
        );
        assert_eq!(attr(embed, "catalog.embed.batches").as_deref(), Some("3"));
        assert_eq!(attr(embed, "catalog.embed.attempt").as_deref(), Some("1"));
        assert_eq!(
            attr(embed, "catalog.embed.dimensions").as_deref(),
            Some("256")
        );
        assert_eq!(
            attr(embed, "gen_ai.request.model").as_deref(),
            Some(FAKE_MODEL)
        );
    }

    #[tokio::test]
    async fn a_failed_attempt_marks_catalog_embed_as_an_error() {
        let capture = SpanCapture::start();
        let fake = Arc::new(FakeEmbedder::default());
        fake.fail_with(LlmError::Unreachable);
        let state = AppState::new(&config(), shop(), fake);
        assert!(state.build_index(3).await.is_err());
        let spans = capture.finished_spans();
        let embed = spans
            .iter()
            .find(|s| s.name == "catalog.embed")
            .expect("catalog.embed span");
        assert_eq!(attr(embed, "error.type").as_deref(), Some("unreachable"));
        assert_eq!(attr(embed, "catalog.embed.attempt").as_deref(), Some("3"));
        assert!(matches!(
            embed.status,
            opentelemetry::trace::Status::Error { .. }
        ));
    }

    #[tokio::test]
    async fn retrieval_span_sits_under_the_server_span_with_its_attributes() {
        let (state, fake) = ready_state(shop()).await;
        let capture = SpanCapture::start();
        let router = app(state);
        let (status, body) =
            recommend_json(&router, json!({"query": "Samsung 65 QLED", "top_k": 2})).await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // A failure answer carries the trace id, so a caller can find the trace.
        fake.fail_with(LlmError::Unreachable);
        let (status, body) = recommend_json(&router, json!({"query": "tv"})).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let trace_id = body["error"]["trace_id"].as_str().expect("trace id");
        assert_eq!(trace_id.len(), 32, "{body}");

        let spans = capture.finished_spans();
        let server = spans
            .iter()
            .find(|s| s.name == "POST /v1/recommend")
            .expect("server span");
        let retrieval = spans
            .iter()
            .find(|s| s.name == "retrieval catalog")
            .expect("retrieval span");
        assert_eq!(retrieval.span_kind, SpanKind::Internal);
        assert_eq!(retrieval.parent_span_id, server.span_context.span_id());
        assert_eq!(
            attr(retrieval, "gen_ai.operation.name").as_deref(),
            Some("retrieval")
        );
        assert_eq!(
            attr(retrieval, "gen_ai.data_source.id").as_deref(),
            Some("catalog")
        );
        assert_eq!(
            attr(retrieval, "gen_ai.retrieval.top_k").as_deref(),
            Some("2")
        );
        assert_eq!(
            attr(retrieval, "retrieval.result_count").as_deref(),
            Some("2")
        );
        assert_eq!(
            attr(retrieval, "retrieval.catalog_size").as_deref(),
            Some("8")
        );
        assert!(attr(retrieval, "retrieval.best_score").is_some());
        // The query text and the documents are opt-in: off unless capture is enabled.
        assert_eq!(attr(retrieval, "gen_ai.retrieval.query.text"), None);
        assert_eq!(attr(retrieval, "gen_ai.retrieval.documents"), None);
        assert_eq!(
            spans
                .iter()
                .filter(|s| s.name == "retrieval catalog")
                .count(),
            1,
            "no retrieval when the embedding failed"
        );
    }

    #[tokio::test]
    async fn with_content_capture_the_retrieval_span_has_the_query_and_the_documents() {
        let mut config = config();
        config.llm.capture_content = true;
        let fake = Arc::new(FakeEmbedder::default());
        let state = AppState::new(&config, shop(), fake);
        state.build_index(1).await.expect("index");
        let capture = SpanCapture::start();
        let (status, body) =
            recommend_json(&app(state), json!({"query": "Samsung 65 QLED", "top_k": 2})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let spans = capture.finished_spans();
        let retrieval = spans
            .iter()
            .find(|s| s.name == "retrieval catalog")
            .expect("retrieval span");
        assert_eq!(
            attr(retrieval, "gen_ai.retrieval.query.text").as_deref(),
            Some("Samsung 65 QLED")
        );
        let documents: Value = serde_json::from_str(
            &attr(retrieval, "gen_ai.retrieval.documents").expect("documents"),
        )
        .expect("JSON");
        assert_eq!(documents[0]["id"], "samsung-65-qled", "{documents}");
        assert!(documents[0]["score"].is_number(), "{documents}");
        assert_eq!(documents.as_array().map(Vec::len), Some(2));
    }
}
