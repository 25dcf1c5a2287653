//! Streamed chat completions: SSE split awkwardly across network reads, the span kept open until
//! the stream ends with time to first chunk and usage, retries only before the first byte, and
//! streams that fail, break off or are dropped.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt as _;
use llm_client::{ChatStream, LlmClient as _, LlmError, StreamEvent};

/// Drains a stream: the deltas, then the final item.
async fn drain(mut stream: ChatStream) -> (Vec<String>, Option<Result<StreamEvent, LlmError>>) {
    let mut deltas = Vec::new();
    let mut last = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(StreamEvent::Delta(text)) => deltas.push(text),
            other => {
                last = Some(other);
                break;
            }
        }
    }
    assert!(stream.next().await.is_none(), "nothing after the end");
    (deltas, last)
}

/// An SSE body with every awkward feature: CRLF and CR line endings, a comment, an `event:`
/// field, one chunk spread over several `data:` lines, multi-byte characters, a role-only first
/// chunk, and the final usage chunk before `[DONE]`.
fn awkward_sse() -> String {
    let first = chunk(None, None);
    let multi_line = chunk(Some("the ShopMax "), None).replacen(",", ",\ndata: ", 2);
    format!(
        ": keep-alive\r\n\r\n\
         data: {first}\r\n\r\n\
         event: message\ndata: {}\n\n\
         data: {multi_line}\n\n\
         data: {}\r\r\
         data: {}\n\n\
         data: {}\n\n\
         data: [DONE]\n\n",
        chunk(Some("Try "), None),
        chunk(Some("X1 — 🎧 "), None),
        chunk(Some("headphones."), Some("stop")),
        usage_chunk(),
    )
}

const STREAMED: &str = "Try the ShopMax X1 — 🎧 headphones.";

#[test]
fn stream_split_awkwardly_accumulates_content_and_usage() {
    run(async {
        for piece in [1, 3, 7, 64, 4096] {
            let reply = Reply::Delayed(
                Duration::from_millis(30),
                Box::new(Reply::sse(&awkward_sse(), piece)),
            );
            let fake = Fake::start(vec![reply]).await;
            let client = client(config(&fake.base_url()));
            let ((deltas, last), trace_id) = traced(async {
                let stream = client.chat_stream(request()).await.expect("stream");
                drain(stream).await
            })
            .await;
            assert_eq!(deltas.concat(), STREAMED, "piece {piece}");
            let Some(Ok(StreamEvent::Done(response))) = last else {
                panic!("piece {piece}: ended with {last:?}");
            };
            assert_eq!(response.content, STREAMED);
            assert_eq!(response.id, RESPONSE_ID);
            assert_eq!(response.model, RESPONSE_MODEL);
            assert_eq!(response.finish_reason.as_deref(), Some("stop"));
            assert_eq!(response.usage.prompt_tokens, PROMPT_TOKENS);
            assert_eq!(response.usage.completion_tokens, COMPLETION_TOKENS);
            assert_eq!(
                response.usage.total_tokens,
                PROMPT_TOKENS + COMPLETION_TOKENS
            );

            let sent = &fake.requests()[0];
            assert_eq!(sent.body["stream"], true);
            assert_eq!(sent.body["stream_options"]["include_usage"], true);
            assert_eq!(
                sent.headers.get("accept").and_then(|v| v.to_str().ok()),
                Some("text/event-stream")
            );

            let spans = spans_of(&trace_id, 3).await;
            let genai = span(&spans, "chat gpt-4o-mini");
            assert_eq!(genai.span.kind, KIND_CLIENT);
            for (key, value) in [
                ("gen_ai.operation.name", "chat"),
                ("gen_ai.response.model", RESPONSE_MODEL),
                ("gen_ai.response.id", RESPONSE_ID),
                ("gen_ai.response.finish_reasons", "[stop]"),
                ("gen_ai.usage.input_tokens", "42"),
                ("gen_ai.usage.output_tokens", "7"),
                ("llm.prompt_tokens", "42"),
                ("llm.completion_tokens", "7"),
                ("llm.model", RESPONSE_MODEL),
                ("gen_ai.usage.cost.currency", "USD"),
            ] {
                assert_eq!(genai.attr(key).as_deref(), Some(value), "{key}");
            }
            let expected = (42.0 * 0.15 + 7.0 * 0.60) / 1e6;
            let cost = response
                .cost
                .as_ref()
                .expect("a streamed answer is priced too");
            assert!((cost.amount - expected).abs() < 1e-15);
            let ttfc: f64 = genai
                .attr("gen_ai.response.time_to_first_chunk")
                .expect("time to first chunk")
                .parse()
                .expect("seconds");
            assert!(ttfc >= 0.03, "the fake waited 30 ms: {ttfc}");
            // The span lasted until the stream ended, after the first chunk.
            let span_secs = std::time::Duration::from_nanos(
                genai.span.end_time_unix_nano - genai.span.start_time_unix_nano,
            )
            .as_secs_f64();
            assert!(span_secs >= ttfc, "{span_secs} < {ttfc}");
            assert_eq!(genai.attr("error.type"), None);

            let ttfc_points = wait_for_points(
                "gen_ai.client.operation.time_to_first_chunk",
                fake.addr.port(),
                |points| !points.is_empty(),
            )
            .await;
            assert_eq!(num(&ttfc_points[0]["count"]), 1.0);
            // Recorded with the response model, like the other metrics.
            assert_eq!(
                ttfc_points[0]["attrs"]["gen_ai.response.model"],
                RESPONSE_MODEL
            );
            // Every chunk after the first adds a time-per-output-chunk measurement.
            let per_chunk = wait_for_points(
                "gen_ai.client.operation.time_per_output_chunk",
                fake.addr.port(),
                |points| !points.is_empty(),
            )
            .await;
            assert!(num(&per_chunk[0]["count"]) >= 2.0, "{per_chunk:#?}");
            assert_eq!(
                per_chunk[0]["attrs"]["gen_ai.response.model"],
                RESPONSE_MODEL
            );
            assert_eq!(genai.attr("gen_ai.request.stream").as_deref(), Some("true"));
            assert_eq!(genai.attr("gen_ai.output.type").as_deref(), Some("text"));
            wait_for_points("gen_ai.client.token.usage", fake.addr.port(), |points| {
                points.len() >= 2
            })
            .await;
        }
    });
}

#[test]
fn stream_content_is_captured_only_when_enabled() {
    run(async {
        for capture in [true, false] {
            let fake = Fake::start(vec![Reply::sse(&awkward_sse(), 5)]).await;
            let mut config = config(&fake.base_url());
            config.capture_content = capture;
            let client = client(config);
            let (_, trace_id) =
                traced(async { drain(client.chat_stream(request()).await.expect("stream")).await })
                    .await;
            let spans = spans_of(&trace_id, 3).await;
            let genai = span(&spans, "chat gpt-4o-mini");
            let output = genai.attr("gen_ai.output.messages");
            if capture {
                assert!(output.expect("output").contains(STREAMED));
                assert!(
                    genai
                        .attr("gen_ai.input.messages")
                        .expect("input")
                        .contains(PROMPT)
                );
            } else {
                assert_eq!(output, None);
                let text = spans.iter().map(span_text).collect::<String>();
                assert!(!text.contains("headphones") && !text.contains(PROMPT));
            }
        }
    });
}

#[test]
fn stream_retries_before_the_first_byte() {
    run(async {
        let fake = Fake::start(vec![
            Reply::status_with(429, vec![("retry-after", "1".into())]),
            Reply::status(502),
            Reply::sse(&awkward_sse(), 16),
        ])
        .await;
        let mut config = config(&fake.base_url());
        // Waits long enough to tell apart from the attempt itself: Retry-After capped at 150 ms,
        // then a backoff of 75 to 150 ms.
        config.initial_backoff = std::time::Duration::from_millis(150);
        config.max_backoff = std::time::Duration::from_millis(150);
        let client = client(config);
        let ((deltas, last), trace_id) =
            traced(async { drain(client.chat_stream(request()).await.expect("stream")).await })
                .await;
        assert_eq!(deltas.concat(), STREAMED);
        assert!(matches!(last, Some(Ok(StreamEvent::Done(_)))));
        let spans = spans_of(&trace_id, 5).await;
        let genai = span(&spans, "chat gpt-4o-mini");
        let http = attempts(&spans, genai);
        assert_eq!(
            http.iter().map(|s| resend_count(s)).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        let reasons: Vec<String> = genai
            .span
            .events
            .iter()
            .filter(|e| e.name == "llm.retry")
            .filter_map(|e| otlp_sink::attr_string(&e.attributes, "error.type"))
            .collect();
        assert_eq!(reasons, vec!["429", "502"]);
        // Time to first chunk counts from the attempt that succeeded: the failed attempts and
        // the waits between them (at least 225 ms here) are not in it.
        let ttfc: f64 = genai
            .attr("gen_ai.response.time_to_first_chunk")
            .expect("time to first chunk")
            .parse()
            .expect("seconds");
        let span_secs = std::time::Duration::from_nanos(
            genai.span.end_time_unix_nano - genai.span.start_time_unix_nano,
        )
        .as_secs_f64();
        assert!(span_secs >= 0.225, "{span_secs}");
        assert!(
            ttfc < span_secs - 0.2,
            "ttfc {ttfc} of a {span_secs} s call"
        );
    });
}

#[test]
fn stream_failing_before_the_first_byte_gives_up_with_the_status() {
    run(async {
        let fake = Fake::start(vec![Reply::status(503)]).await;
        let mut config = config(&fake.base_url());
        config.max_retries = 1;
        let client = client(config);
        let (result, trace_id) = traced(client.chat_stream(request())).await;
        assert!(matches!(result, Err(LlmError::Status { status: 503 })));
        let spans = spans_of(&trace_id, 4).await;
        let genai = span(&spans, "chat gpt-4o-mini");
        assert_eq!(genai.attr("error.type").as_deref(), Some("503"));
        assert_eq!(
            genai.span.status.as_ref().map(|s| s.code),
            Some(STATUS_ERROR)
        );
    });
}

#[test]
fn stream_cut_off_before_done_is_an_error_and_not_retried() {
    run(async {
        let body = format!(
            "data: {}\n\ndata: {}\n\n",
            chunk(None, None),
            chunk(Some("Try "), None)
        );
        let fake = Fake::start(vec![Reply::sse(&body, 10), Reply::sse(&awkward_sse(), 10)]).await;
        let client = client(config(&fake.base_url()));
        let ((deltas, last), trace_id) =
            traced(async { drain(client.chat_stream(request()).await.expect("stream")).await })
                .await;
        assert_eq!(deltas, vec!["Try ".to_owned()]);
        assert!(
            matches!(last, Some(Err(LlmError::InvalidResponse(_)))),
            "{last:?}"
        );
        assert_eq!(fake.requests().len(), 1, "no retry after the first byte");
        let spans = spans_of(&trace_id, 3).await;
        let genai = span(&spans, "chat gpt-4o-mini");
        assert_eq!(
            genai.attr("error.type").as_deref(),
            Some("invalid_response")
        );
        assert!(genai.attr("gen_ai.response.time_to_first_chunk").is_some());
    });
}

#[test]
fn stream_with_a_malformed_chunk_is_an_invalid_response() {
    run(async {
        for body in [
            b"data: {\"choices\": [\n\n".to_vec(),
            b"data: {\"error\": {\"message\": \"overloaded\"}}\n\n".to_vec(),
            format!("data: {}\n\n", "x".repeat(2 * 1024 * 1024)).into_bytes(),
            b"data: \xff\xfe\n\n".to_vec(),
        ] {
            let fake = Fake::start(vec![Reply::sse_bytes(&body, 65_536)]).await;
            let client = client(config(&fake.base_url()));
            let stream = client.chat_stream(request()).await.expect("stream");
            let (deltas, last) = drain(stream).await;
            assert!(deltas.is_empty());
            assert!(
                matches!(last, Some(Err(LlmError::InvalidResponse(_)))),
                "{last:?}"
            );
        }
    });
}

#[test]
fn stream_without_usage_or_done_still_completes_on_a_finish_reason() {
    run(async {
        // Some servers ignore include_usage and close without [DONE].
        let body = format!(
            "data: {}\n\ndata: {}\n\n",
            chunk(Some("Hello"), None),
            chunk(Some("!"), Some("length"))
        );
        let fake = Fake::start(vec![Reply::sse(&body, 9)]).await;
        let client = client(config(&fake.base_url()));
        let ((deltas, last), trace_id) =
            traced(async { drain(client.chat_stream(request()).await.expect("stream")).await })
                .await;
        assert_eq!(deltas.concat(), "Hello!");
        let Some(Ok(StreamEvent::Done(response))) = last else {
            panic!("{last:?}");
        };
        assert_eq!(response.finish_reason.as_deref(), Some("length"));
        assert_eq!(response.usage.prompt_tokens, 0);
        let spans = spans_of(&trace_id, 3).await;
        let genai = span(&spans, "chat gpt-4o-mini");
        assert_eq!(
            genai.attr("gen_ai.response.finish_reasons").as_deref(),
            Some("[length]")
        );
        // Usage the server did not report is not made up, and neither is a cost.
        assert_eq!(genai.attr("gen_ai.usage.input_tokens"), None);
        assert_eq!(genai.attr("llm.prompt_tokens"), None);
        assert_eq!(genai.attr("gen_ai.usage.cost.amount"), None);
        assert_eq!(response.cost, None);
    });
}

#[test]
fn stream_dropped_midway_ends_the_span_as_cancelled() {
    run(async {
        let mut pieces = vec![format!("data: {}\n\n", chunk(Some("Try "), None)).into_bytes()];
        // The rest would come much later; the caller gives up first.
        pieces.push(b": slow\n\n".to_vec());
        let fake = Fake::start(vec![Reply::Stream {
            pieces,
            gap: Duration::from_secs(5),
        }])
        .await;
        let client = client(config(&fake.base_url()));
        let trace_id = traced(async {
            let mut stream = client.chat_stream(request()).await.expect("stream");
            let first = stream.next().await;
            assert!(matches!(first, Some(Ok(StreamEvent::Delta(ref t))) if t == "Try "));
            drop(stream);
        })
        .await
        .1;
        let spans = spans_of(&trace_id, 3).await;
        let genai = span(&spans, "chat gpt-4o-mini");
        assert_eq!(genai.attr("error.type").as_deref(), Some("cancelled"));
        assert!(genai.attr("gen_ai.response.time_to_first_chunk").is_some());
        assert_eq!(
            genai.attr("gen_ai.response.model").as_deref(),
            Some(RESPONSE_MODEL)
        );
    });
}
