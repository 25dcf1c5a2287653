//! Plain chat completions against a scripted fake server: the GenAI span and its attributes, the
//! HTTP attempt spans under it, retries (429 with Retry-After, 5xx, timeouts), failures, content
//! capture on and off, the API key kept out of telemetry, and the GenAI metrics.

mod common;

use std::time::{Duration, Instant};

use common::*;
use llm_client::{ApiKey, LlmClient as _, LlmError};

#[test]
fn chat_records_the_genai_span_with_every_attribute() {
    run(async {
        let fake = Fake::start(vec![Reply::json(completion())]).await;
        let client = client(config(&fake.base_url()));
        let (result, trace_id) = traced(client.chat(request())).await;
        let response = result.expect("chat");
        assert_eq!(response.content, ANSWER);
        assert_eq!(response.id, RESPONSE_ID);
        assert_eq!(response.model, RESPONSE_MODEL);
        assert_eq!(response.finish_reason.as_deref(), Some("stop"));
        assert_eq!(response.usage.prompt_tokens, PROMPT_TOKENS);
        assert_eq!(response.usage.completion_tokens, COMPLETION_TOKENS);

        // The request on the wire: the OpenAI body, no key header without a key, and no
        // baggage or tracestate for a non-internal host.
        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        let sent = &requests[0];
        assert_eq!(sent.path, "/v1/chat/completions");
        assert_eq!(sent.body["model"], "gpt-4o-mini");
        assert_eq!(sent.body["messages"][1]["role"], "user");
        assert_eq!(sent.body["messages"][1]["content"], PROMPT);
        assert_eq!(sent.body["max_tokens"], 256);
        assert!(sent.body.get("stream").is_none(), "{}", sent.body);
        assert!(sent.headers.get("authorization").is_none());
        assert!(sent.headers.get("baggage").is_none());
        assert!(sent.headers.get("tracestate").is_none());

        let spans = spans_of(&trace_id, 3).await;
        let genai = span(&spans, "chat gpt-4o-mini");
        assert_eq!(genai.span.kind, KIND_CLIENT);
        let port = fake.addr.port().to_string();
        for (key, value) in [
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.provider.name", "openai"),
            ("gen_ai.request.model", "gpt-4o-mini"),
            ("gen_ai.request.temperature", "0.2"),
            ("gen_ai.request.max_tokens", "256"),
            ("gen_ai.response.model", RESPONSE_MODEL),
            ("gen_ai.response.id", RESPONSE_ID),
            ("gen_ai.response.finish_reasons", "[stop]"),
            ("gen_ai.usage.input_tokens", "42"),
            ("gen_ai.usage.output_tokens", "7"),
            ("server.address", "127.0.0.1"),
            ("server.port", port.as_str()),
            ("llm.model", RESPONSE_MODEL),
            ("llm.prompt_tokens", "42"),
            ("llm.completion_tokens", "7"),
            ("gen_ai.conversation.id", CONVERSATION),
            ("gen_ai.request.stream", "false"),
            ("gen_ai.output.type", "text"),
        ] {
            assert_eq!(genai.attr(key).as_deref(), Some(value), "{key}");
        }
        let latency: i64 = genai
            .attr("llm.latency_ms")
            .expect("llm.latency_ms")
            .parse()
            .expect("integer ms");
        assert!(latency >= 0);
        assert_eq!(genai.attr("error.type"), None);
        assert_eq!(genai.attr("gen_ai.response.time_to_first_chunk"), None);
        assert_eq!(genai.attr("gen_ai.input.messages"), None);
        assert_ne!(
            genai.span.status.as_ref().map(|s| s.code),
            Some(STATUS_ERROR)
        );

        // The HTTP attempt is an HTTP CLIENT span under the GenAI span.
        let http = attempts(&spans, genai);
        assert_eq!(http.len(), 1);
        assert_eq!(http[0].span.name, "POST /chat/completions");
        assert_eq!(http[0].span.kind, KIND_CLIENT);
        assert_eq!(
            http[0].attr("http.response.status_code").as_deref(),
            Some("200")
        );
        assert_eq!(http[0].attr("http.request.resend_count"), None);

        // Metrics: token usage per type equal to the fake's usage, and the duration.
        let tokens = wait_for_points("gen_ai.client.token.usage", fake.addr.port(), |points| {
            points.len() >= 2
        })
        .await;
        for (kind, expected) in [("input", PROMPT_TOKENS), ("output", COMPLETION_TOKENS)] {
            let point = tokens
                .iter()
                .find(|p| p["attrs"]["gen_ai.token.type"] == kind)
                .unwrap_or_else(|| panic!("{kind} tokens in {tokens:#?}"));
            #[expect(clippy::cast_precision_loss, reason = "token counts are small")]
            let expected = expected as f64;
            assert_eq!(num(&point["sum"]), expected);
            assert_eq!(point["attrs"]["gen_ai.operation.name"], "chat");
            assert_eq!(point["attrs"]["gen_ai.provider.name"], "openai");
            assert_eq!(point["attrs"]["gen_ai.request.model"], "gpt-4o-mini");
            assert_eq!(point["attrs"]["gen_ai.response.model"], RESPONSE_MODEL);
            assert_eq!(point["attrs"]["server.address"], "127.0.0.1");
            // Bucket boundaries recommended by the conventions.
            assert_eq!(num(&point["explicitBounds"][0]), 1.0);
            assert_eq!(num(&point["explicitBounds"][13]), 67_108_864.0);
        }
        let duration = wait_for_points(
            "gen_ai.client.operation.duration",
            fake.addr.port(),
            |points| !points.is_empty(),
        )
        .await;
        assert!(duration[0]["attrs"].get("error.type").is_none());
        assert_eq!(num(&duration[0]["explicitBounds"][0]), 0.01);
        assert_eq!(num(&duration[0]["explicitBounds"][13]), 81.92);

        // Cost (semconv-genai PR #443): the default price of gpt-4o-mini, which the dated
        // response model is a snapshot of, on the span, in the response and on the counter.
        let expected = (42.0 * 0.15 + 7.0 * 0.60) / 1e6;
        let amount: f64 = genai
            .attr("gen_ai.usage.cost.amount")
            .expect("a cost")
            .parse()
            .expect("a double");
        assert!((amount - expected).abs() < 1e-15, "{amount}");
        assert_eq!(
            genai.attr("gen_ai.usage.cost.currency").as_deref(),
            Some("USD")
        );
        assert_eq!(
            genai.attr("gen_ai.usage.cost.source").as_deref(),
            Some("local")
        );
        let cost = response.cost.expect("the response's cost");
        assert!((cost.amount - expected).abs() < 1e-15);
        let spent = wait_for_points("gen_ai.client.operation.cost", fake.addr.port(), |points| {
            !points.is_empty()
        })
        .await;
        assert!(
            (num(&spent[0]["asDouble"]) - expected).abs() < 1e-15,
            "{spent:#?}"
        );
        assert_eq!(spent[0]["attrs"]["gen_ai.usage.cost.currency"], "USD");
        assert_eq!(spent[0]["attrs"]["gen_ai.response.model"], RESPONSE_MODEL);
        assert_eq!(spent[0]["attrs"]["gen_ai.operation.name"], "chat");
        // No cached tokens reported, so none recorded.
        assert_eq!(genai.attr("gen_ai.usage.cache_read.input_tokens"), None);
    });
}

#[test]
fn opting_in_to_the_latest_genai_conventions_drops_the_articles_llm_attributes() {
    run(async {
        let fake = Fake::start(vec![Reply::json(completion())]).await;
        let mut config = config(&fake.base_url());
        config.article_attributes = false;
        let client = client(config);
        let (result, trace_id) = traced(client.chat(request())).await;
        result.expect("chat");
        let spans = spans_of(&trace_id, 2).await;
        let genai = span(&spans, "chat gpt-4o-mini");
        assert_eq!(
            genai.attr("gen_ai.usage.input_tokens").as_deref(),
            Some("42")
        );
        for key in [
            "llm.model",
            "llm.prompt_tokens",
            "llm.completion_tokens",
            "llm.latency_ms",
        ] {
            assert_eq!(genai.attr(key), None, "{key}");
        }
    });
}

#[test]
fn cached_prompt_tokens_are_recorded_and_priced_at_the_cached_price() {
    run(async {
        let mut body = completion();
        body["usage"]["prompt_tokens_details"] = serde_json::json!({"cached_tokens": 32});
        let fake = Fake::start(vec![Reply::json(body)]).await;
        let client = client(config(&fake.base_url()));
        let (result, trace_id) = traced(client.chat(request())).await;
        let response = result.expect("chat");
        assert_eq!(response.usage.cached_prompt_tokens, Some(32));
        let spans = spans_of(&trace_id, 2).await;
        let genai = span(&spans, "chat gpt-4o-mini");
        assert_eq!(
            genai
                .attr("gen_ai.usage.cache_read.input_tokens")
                .as_deref(),
            Some("32")
        );
        // Input tokens still count the cached ones, as OpenAI reports them.
        assert_eq!(
            genai.attr("gen_ai.usage.input_tokens").as_deref(),
            Some("42")
        );
        let expected = (10.0 * 0.15 + 32.0 * 0.075 + 7.0 * 0.60) / 1e6;
        let cost = response.cost.expect("priced");
        assert!((cost.amount - expected).abs() < 1e-15, "{}", cost.amount);
    });
}

#[test]
fn a_model_without_a_price_gets_tokens_but_no_cost() {
    run(async {
        let mut body = completion();
        body["model"] = serde_json::json!("llama3.1:8b");
        let fake = Fake::start(vec![Reply::json(body)]).await;
        let mut config = config(&fake.base_url());
        config.chat_model = "llama3.1:8b".into();
        let client = client(config);
        let (result, trace_id) = traced(client.chat(request())).await;
        let response = result.expect("chat");
        assert_eq!(response.cost, None);
        let spans = spans_of(&trace_id, 2).await;
        let genai = span(&spans, "chat llama3.1:8b");
        assert_eq!(
            genai.attr("gen_ai.usage.input_tokens").as_deref(),
            Some("42")
        );
        for key in [
            "gen_ai.usage.cost.amount",
            "gen_ai.usage.cost.currency",
            "gen_ai.usage.cost.source",
        ] {
            assert_eq!(genai.attr(key), None, "{key}");
        }
        // The duration is recorded; the cost counter has no point for this server.
        wait_for_points("gen_ai.client.operation.duration", fake.addr.port(), |p| {
            !p.is_empty()
        })
        .await;
        assert!(histogram_points("gen_ai.client.operation.cost", fake.addr.port()).is_empty());
    });
}

#[test]
fn chat_retries_429_honouring_retry_after() {
    run(async {
        let fake = Fake::start(vec![
            Reply::status_with(429, vec![("retry-after", "1".into())]),
            Reply::json(completion()),
        ])
        .await;
        let mut config = config(&fake.base_url());
        // Retry-After: 1 is capped at max_backoff; the backoff alone would be ~1 ms.
        config.max_backoff = Duration::from_millis(150);
        let client = client(config);
        let start = Instant::now();
        let (result, trace_id) = traced(client.chat(request())).await;
        assert_eq!(result.expect("chat").content, ANSWER);
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert_eq!(fake.requests().len(), 2);

        let spans = spans_of(&trace_id, 4).await;
        let genai = span(&spans, "chat gpt-4o-mini");
        let http = attempts(&spans, genai);
        assert_eq!(http.len(), 2, "{spans:#?}");
        assert_eq!(
            http[0].attr("http.response.status_code").as_deref(),
            Some("429")
        );
        assert_eq!(resend_count(http[1]), 1);
        assert_eq!(
            http[1].attr("http.response.status_code").as_deref(),
            Some("200")
        );

        let retries: Vec<_> = genai
            .span
            .events
            .iter()
            .filter(|e| e.name == "llm.retry")
            .collect();
        assert_eq!(retries.len(), 1, "{:#?}", genai.span.events);
        let attr = |key: &str| otlp_sink::attr_string(&retries[0].attributes, key);
        assert_eq!(attr("llm.retry.attempt").as_deref(), Some("1"));
        assert_eq!(attr("error.type").as_deref(), Some("429"));
        assert_eq!(attr("llm.retry.wait_ms").as_deref(), Some("150"));
        assert_eq!(attr("llm.retry.retry_after").as_deref(), Some("true"));

        // The latency covers both attempts and the wait; the call succeeded.
        let latency: i64 = genai
            .attr("llm.latency_ms")
            .expect("latency")
            .parse()
            .expect("int");
        assert!(latency >= 150, "{latency}");
        assert_eq!(genai.attr("error.type"), None);
        assert_eq!(
            genai.attr("gen_ai.usage.input_tokens").as_deref(),
            Some("42")
        );
    });
}

#[test]
fn chat_retries_500_then_succeeds() {
    run(async {
        let fake = Fake::start(vec![Reply::status(500), Reply::json(completion())]).await;
        let client = client(config(&fake.base_url()));
        let (result, trace_id) = traced(client.chat(request())).await;
        assert_eq!(result.expect("chat").content, ANSWER);

        let spans = spans_of(&trace_id, 4).await;
        let genai = span(&spans, "chat gpt-4o-mini");
        let http = attempts(&spans, genai);
        assert_eq!(
            http.iter().map(|s| resend_count(s)).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(http[0].attr("error.type").as_deref(), Some("500"));
        let retry = genai
            .span
            .events
            .iter()
            .find(|e| e.name == "llm.retry")
            .expect("retry event");
        assert_eq!(
            otlp_sink::attr_string(&retry.attributes, "error.type").as_deref(),
            Some("500")
        );
        assert_eq!(
            otlp_sink::attr_string(&retry.attributes, "llm.retry.retry_after").as_deref(),
            Some("false")
        );
        assert_eq!(genai.attr("error.type"), None);
    });
}

#[test]
fn chat_gives_up_after_max_retries_on_503() {
    run(async {
        let fake = Fake::start(vec![Reply::status(503)]).await;
        let client = client(config(&fake.base_url()));
        let (result, trace_id) = traced(client.chat(request())).await;
        assert_eq!(result, Err(LlmError::Status { status: 503 }));
        assert_eq!(fake.requests().len(), 3, "one attempt and two retries");

        let spans = spans_of(&trace_id, 5).await;
        let genai = span(&spans, "chat gpt-4o-mini");
        assert_eq!(genai.attr("error.type").as_deref(), Some("503"));
        assert_eq!(
            genai.span.status.as_ref().map(|s| s.code),
            Some(STATUS_ERROR)
        );
        assert_eq!(genai.attr("gen_ai.response.model"), None);
        assert_eq!(genai.attr("llm.model").as_deref(), Some("gpt-4o-mini"));
        let http = attempts(&spans, genai);
        assert_eq!(
            http.iter().map(|s| resend_count(s)).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        let retries = genai
            .span
            .events
            .iter()
            .filter(|e| e.name == "llm.retry")
            .count();
        assert_eq!(retries, 2);

        let duration = wait_for_points(
            "gen_ai.client.operation.duration",
            fake.addr.port(),
            |points| !points.is_empty(),
        )
        .await;
        assert_eq!(duration[0]["attrs"]["error.type"], "503");
        assert!(histogram_points("gen_ai.client.token.usage", fake.addr.port()).is_empty());
    });
}

#[test]
fn chat_exhausting_retries_on_429_is_rate_limited() {
    run(async {
        let fake = Fake::start(vec![Reply::status(429)]).await;
        let mut config = config(&fake.base_url());
        config.max_retries = 1;
        let client = client(config);
        let (result, trace_id) = traced(client.chat(request())).await;
        assert_eq!(result, Err(LlmError::RateLimited));
        assert_eq!(fake.requests().len(), 2);
        let spans = spans_of(&trace_id, 4).await;
        let genai = span(&spans, "chat gpt-4o-mini");
        assert_eq!(genai.attr("error.type").as_deref(), Some("429"));
    });
}

#[test]
fn chat_does_not_retry_client_errors() {
    run(async {
        let fake = Fake::start(vec![Reply::status(400), Reply::json(completion())]).await;
        let client = client(config(&fake.base_url()));
        let (result, trace_id) = traced(client.chat(request())).await;
        assert_eq!(result, Err(LlmError::Status { status: 400 }));
        assert_eq!(fake.requests().len(), 1);
        let spans = spans_of(&trace_id, 3).await;
        let genai = span(&spans, "chat gpt-4o-mini");
        assert_eq!(genai.attr("error.type").as_deref(), Some("400"));
        assert!(genai.span.events.iter().all(|e| e.name != "llm.retry"));
    });
}

#[test]
fn chat_malformed_json_is_an_invalid_response_and_not_retried() {
    run(async {
        for body in [
            "{\"choices\": [",
            "<html>oops</html>",
            "{\"choices\": []}",
            "{\"choices\": 7}",
        ] {
            let fake = Fake::start(vec![Reply::raw(200, body), Reply::json(completion())]).await;
            let client = client(config(&fake.base_url()));
            let (result, trace_id) = traced(client.chat(request())).await;
            assert!(
                matches!(result, Err(LlmError::InvalidResponse(_))),
                "{body}: {result:?}"
            );
            assert_eq!(fake.requests().len(), 1);
            let spans = spans_of(&trace_id, 3).await;
            let genai = span(&spans, "chat gpt-4o-mini");
            assert_eq!(
                genai.attr("error.type").as_deref(),
                Some("invalid_response")
            );
            assert_eq!(
                genai.span.status.as_ref().map(|s| s.code),
                Some(STATUS_ERROR)
            );
        }
    });
}

#[test]
fn chat_retries_an_attempt_that_times_out() {
    run(async {
        let fake = Fake::start(vec![
            Reply::Delayed(Duration::from_secs(3), Box::new(Reply::json(completion()))),
            Reply::json(completion()),
        ])
        .await;
        let mut config = config(&fake.base_url());
        config.timeout = Duration::from_millis(200);
        let client = client(config);
        let (result, trace_id) = traced(client.chat(request())).await;
        assert_eq!(result.expect("second attempt").content, ANSWER);
        let spans = spans_of(&trace_id, 4).await;
        let genai = span(&spans, "chat gpt-4o-mini");
        let http = attempts(&spans, genai);
        assert_eq!(http.len(), 2);
        assert_eq!(http[0].attr("error.type").as_deref(), Some("timeout"));
        let retry = genai
            .span
            .events
            .iter()
            .find(|e| e.name == "llm.retry")
            .expect("retry event");
        assert_eq!(
            otlp_sink::attr_string(&retry.attributes, "error.type").as_deref(),
            Some("timeout")
        );
    });
}

#[test]
fn chat_to_a_closed_port_is_unreachable() {
    run(async {
        let addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr")
        };
        let client = client(config(&format!("http://{addr}/v1")));
        let (result, trace_id) = traced(client.chat(request())).await;
        assert_eq!(result, Err(LlmError::Unreachable));
        let spans = spans_of(&trace_id, 5).await;
        let genai = span(&spans, "chat gpt-4o-mini");
        assert_eq!(genai.attr("error.type").as_deref(), Some("unreachable"));
    });
}

#[test]
fn api_key_is_sent_as_bearer_but_never_recorded() {
    const KEY: &str = "sk-test-SECRET-9f8e7d6c5b4a";
    run(async {
        let fake = Fake::start(vec![Reply::json(completion()), Reply::status(401)]).await;
        let mut config = config(&fake.base_url());
        config.api_key = Some(ApiKey::new(KEY));
        let client = client(config.clone());
        assert!(!format!("{client:?}").contains(KEY));
        assert!(!format!("{config:?}").contains(KEY));

        let (ok, ok_trace) = traced(client.chat(request())).await;
        ok.expect("chat");
        let (failed, failed_trace) = traced(client.chat(request())).await;
        let error = failed.expect_err("401");
        assert_eq!(error, LlmError::Status { status: 401 });
        assert!(!format!("{error} {error:?}").contains(KEY));

        for request in fake.requests() {
            assert_eq!(
                request
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok()),
                Some(format!("Bearer {KEY}").as_str())
            );
        }
        let mut spans = spans_of(&ok_trace, 3).await;
        spans.extend(spans_of(&failed_trace, 3).await);
        for span in &spans {
            let text = span_text(span);
            assert!(!text.contains("SECRET"), "key in span: {text}");
        }
        // Nor in any exported log record. The records of both calls must have been exported
        // before absence means anything: a marker logged after them arrives after them (one
        // batch queue, in order), so wait for it.
        tracing::warn!(marker = "api-key-calls-logged", "test.logs.marker");
        assert!(
            env()
                .sink
                .wait_until(WAIT, |s| format!("{:?}", s.received().logs)
                    .contains("api-key-calls-logged"))
                .await,
            "the marker log record was exported"
        );
        let logs = format!("{:?}", env().sink.received().logs);
        assert!(!logs.contains("SECRET"));
    });
}

#[test]
fn content_is_captured_when_enabled() {
    run(async {
        let fake = Fake::start(vec![Reply::json(completion())]).await;
        let mut config = config(&fake.base_url());
        config.capture_content = true;
        let client = client(config);
        let (result, trace_id) = traced(client.chat(request())).await;
        result.expect("chat");
        let spans = spans_of(&trace_id, 3).await;
        let genai = span(&spans, "chat gpt-4o-mini");
        let input: serde_json::Value =
            serde_json::from_str(&genai.attr("gen_ai.input.messages").expect("input messages"))
                .expect("json");
        assert_eq!(
            input,
            serde_json::json!([
                {"role": "system", "parts": [{"type": "text", "content": SYSTEM}]},
                {"role": "user", "parts": [{"type": "text", "content": PROMPT}]}
            ])
        );
        let output: serde_json::Value = serde_json::from_str(
            &genai
                .attr("gen_ai.output.messages")
                .expect("output messages"),
        )
        .expect("json");
        assert_eq!(
            output,
            serde_json::json!([{
                "role": "assistant",
                "parts": [{"type": "text", "content": ANSWER}],
                "finish_reason": "stop"
            }])
        );
    });
}

#[test]
fn content_is_not_captured_when_disabled() {
    run(async {
        let fake = Fake::start(vec![Reply::json(completion())]).await;
        let client = client(config(&fake.base_url()));
        let (result, trace_id) = traced(client.chat(request())).await;
        result.expect("chat");
        let spans = spans_of(&trace_id, 3).await;
        let genai = span(&spans, "chat gpt-4o-mini");
        assert_eq!(genai.attr("gen_ai.input.messages"), None);
        assert_eq!(genai.attr("gen_ai.output.messages"), None);
        for span in &spans {
            let text = span_text(span);
            assert!(!text.contains(PROMPT), "prompt in {text}");
            assert!(!text.contains(ANSWER), "answer in {text}");
            assert!(!text.contains(SYSTEM), "system prompt in {text}");
        }
    });
}
