//! `GET|POST /admin/faults`: queue faults for the next model requests, for tests and demos.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{OpenAiError, OpenAiJson};
use crate::faults::{DEFAULT_RETRY_AFTER_SECS, FaultMode};

/// Upper bounds that keep a typo from wedging the mock for hours.
const MAX_COUNT: u64 = 1_000_000;
const MAX_RETRY_AFTER_SECS: u64 = 3600;

/// Unknown fields are rejected here, unlike on the OpenAI endpoints: this API is ours, and a
/// misspelt `count` silently meaning 1 would confuse a demo.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultRequest {
    mode: FaultMode,
    #[serde(default = "one")]
    count: u64,
    #[serde(default = "default_retry_after")]
    retry_after_secs: u64,
}

fn one() -> u64 {
    1
}

fn default_retry_after() -> u64 {
    DEFAULT_RETRY_AFTER_SECS
}

fn view(state: &AppState) -> Json<Value> {
    Json(json!({
        "env": state.faults().always(),
        "queued": state.faults().queued(),
    }))
}

/// Shows the environment's fault and what is queued.
pub(crate) async fn show(State(state): State<AppState>) -> Json<Value> {
    view(&state)
}

/// Queues a fault for the next `count` chat or embedding requests (`none` clears the queue).
pub(crate) async fn set(
    State(state): State<AppState>,
    OpenAiJson(request): OpenAiJson<FaultRequest>,
) -> Result<Json<Value>, OpenAiError> {
    if request.count > MAX_COUNT {
        return Err(OpenAiError::invalid(
            "invalid_value",
            Some("count"),
            format!("'count' must be at most {MAX_COUNT}."),
        ));
    }
    if request.retry_after_secs > MAX_RETRY_AFTER_SECS {
        return Err(OpenAiError::invalid(
            "invalid_value",
            Some("retry_after_secs"),
            format!("'retry_after_secs' must be at most {MAX_RETRY_AFTER_SECS}."),
        ));
    }
    state
        .faults()
        .queue(request.mode, request.count, request.retry_after_secs);
    tracing::info!(
        mode = ?request.mode,
        count = request.count,
        retry_after_secs = request.retry_after_secs,
        "mock_llm.faults.queued"
    );
    Ok(view(&state))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use axum::Router;
    use serde_json::json;

    use crate::test_support::*;
    use crate::{Config, FaultMode, app};

    fn chat_body() -> String {
        let line = catalog::Catalog::embedded()
            .get("samsung-65-qled")
            .expect("seed")
            .prompt_line();
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                { "role": "system", "content": line },
                { "role": "user", "content": "What is the price of Samsung 65 QLED?" },
            ],
        })
        .to_string()
    }

    async fn chat(router: &Router) -> Raw {
        post_json(router.clone(), "/v1/chat/completions", chat_body()).await
    }

    async fn embed(router: &Router) -> Raw {
        post_json(
            router.clone(),
            "/v1/embeddings",
            r#"{"model":"text-embedding-3-small","input":"tv"}"#,
        )
        .await
    }

    async fn set_fault(router: &Router, body: serde_json::Value) -> Raw {
        post_json(router.clone(), "/admin/faults", body.to_string()).await
    }

    #[tokio::test]
    async fn admin_429_fails_the_next_requests_with_retry_after_then_recovers() {
        let router = app(state(Config::for_tests()));
        let raw = set_fault(
            &router,
            json!({ "mode": "429", "count": 2, "retry_after_secs": 7 }),
        )
        .await;
        assert_eq!(raw.status.as_u16(), 200);
        assert_eq!(raw.json()["queued"]["remaining"], 2);

        let first = chat(&router).await;
        let error = assert_openai_error(&first, 429);
        assert_eq!(error["code"], "rate_limit_exceeded");
        assert_eq!(first.headers["retry-after"], "7");
        let second = embed(&router).await;
        assert_openai_error(&second, 429);
        assert_eq!(second.headers["retry-after"], "7");

        assert_eq!(chat(&router).await.status.as_u16(), 200);
        assert_eq!(embed(&router).await.status.as_u16(), 200);
    }

    #[tokio::test]
    async fn admin_500_fails_with_a_server_error_body() {
        let router = app(state(Config::for_tests()));
        set_fault(&router, json!({ "mode": "500" })).await;
        let raw = chat(&router).await;
        assert_eq!(assert_openai_error(&raw, 500)["type"], "server_error");
        assert_eq!(
            chat(&router).await.status.as_u16(),
            200,
            "count defaults to 1"
        );
    }

    #[tokio::test]
    async fn admin_slow_delays_by_the_slow_setting() {
        let config = Config {
            slow: Duration::from_millis(200),
            ..Config::for_tests()
        };
        let router = app(state(config));
        set_fault(&router, json!({ "mode": "slow", "count": 1 })).await;
        let start = Instant::now();
        assert_eq!(chat(&router).await.status.as_u16(), 200);
        assert!(start.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn admin_none_clears_queued_faults() {
        let router = app(state(Config::for_tests()));
        set_fault(&router, json!({ "mode": "500", "count": 10 })).await;
        let raw = set_fault(&router, json!({ "mode": "none" })).await;
        assert!(raw.json()["queued"].is_null());
        assert_eq!(chat(&router).await.status.as_u16(), 200);
        let shown = get_path(router, "/admin/faults").await.json();
        assert_eq!(shown, json!({ "env": "none", "queued": null }));
    }

    #[tokio::test]
    async fn env_fault_applies_to_every_model_request_but_not_to_probes() {
        let config = Config {
            fault: FaultMode::ServerError,
            ..Config::for_tests()
        };
        let router = app(state(config));
        for _ in 0..3 {
            assert_openai_error(&chat(&router).await, 500);
            assert_openai_error(&embed(&router).await, 500);
        }
        assert_eq!(
            get_path(router.clone(), "/healthz").await.status.as_u16(),
            200
        );
        assert_eq!(get_path(router, "/v1/models").await.status.as_u16(), 200);
    }

    #[tokio::test]
    async fn env_429_sends_retry_after() {
        let config = Config {
            fault: FaultMode::RateLimited,
            ..Config::for_tests()
        };
        let raw = chat(&app(state(config))).await;
        assert_openai_error(&raw, 429);
        assert_eq!(raw.headers["retry-after"], "1");
    }

    #[tokio::test]
    async fn queued_faults_override_the_env_fault_then_it_returns() {
        let config = Config {
            fault: FaultMode::RateLimited,
            ..Config::for_tests()
        };
        let router = app(state(config));
        set_fault(&router, json!({ "mode": "500", "count": 1 })).await;
        assert_openai_error(&chat(&router).await, 500);
        assert_openai_error(&chat(&router).await, 429);
    }

    #[rstest::rstest]
    #[case::unknown_mode(r#"{"mode":"503"}"#)]
    #[case::missing_mode(r#"{"count":1}"#)]
    #[case::misspelt_field(r#"{"mode":"429","cnt":3}"#)]
    #[case::negative_count(r#"{"mode":"429","count":-1}"#)]
    #[case::huge_count(r#"{"mode":"429","count":100000000}"#)]
    #[case::huge_retry_after(r#"{"mode":"429","retry_after_secs":99999}"#)]
    #[case::malformed("{")]
    #[tokio::test]
    async fn admin_rejects_bad_fault_requests(#[case] body: &'static str) {
        let router = app(state(Config::for_tests()));
        let raw = post_json(router.clone(), "/admin/faults", body).await;
        assert_openai_error(&raw, 400);
        assert_eq!(
            chat(&router).await.status.as_u16(),
            200,
            "nothing was queued"
        );
    }
}
