//! Embeddings against a scripted fake server: vectors back in input order whatever order the
//! server sends, the `embeddings {model}` span, retries, and refusing answers that do not fit.

mod common;

use common::*;
use llm_client::{EmbeddingClient as _, LlmError};
use serde_json::json;

fn inputs() -> Vec<String> {
    vec!["headphones".into(), "speaker".into(), "charger".into()]
}

/// Vectors for the three inputs, listed out of order as servers may.
fn out_of_order() -> serde_json::Value {
    json!({
        "object": "list",
        "model": "text-embedding-3-small-v2",
        "data": [
            {"object": "embedding", "index": 2, "embedding": [2.0, 2.5]},
            {"object": "embedding", "index": 0, "embedding": [0.0, 0.5]},
            {"object": "embedding", "index": 1, "embedding": [1.0, 1.5]}
        ],
        "usage": {"prompt_tokens": 9, "total_tokens": 9}
    })
}

#[test]
fn embeddings_out_of_order_come_back_in_input_order() {
    run(async {
        let fake = Fake::start(vec![Reply::json(out_of_order())]).await;
        let client = client(config(&fake.base_url()));
        let (result, trace_id) = traced(client.embed(&inputs())).await;
        let embeddings = result.expect("embed");
        assert_eq!(
            embeddings.vectors,
            vec![vec![0.0, 0.5], vec![1.0, 1.5], vec![2.0, 2.5]]
        );
        assert_eq!(embeddings.model, "text-embedding-3-small-v2");
        assert_eq!(embeddings.input_tokens, Some(9));

        let sent = &fake.requests()[0];
        assert_eq!(sent.path, "/v1/embeddings");
        assert_eq!(
            sent.body,
            json!({"model": "text-embedding-3-small", "input": ["headphones", "speaker", "charger"]})
        );

        let spans = spans_of(&trace_id, 3).await;
        let genai = span(&spans, "embeddings text-embedding-3-small");
        assert_eq!(genai.span.kind, KIND_CLIENT);
        let port = fake.addr.port().to_string();
        for (key, value) in [
            ("gen_ai.operation.name", "embeddings"),
            ("gen_ai.provider.name", "openai"),
            ("gen_ai.request.model", "text-embedding-3-small"),
            ("gen_ai.response.model", "text-embedding-3-small-v2"),
            ("gen_ai.usage.input_tokens", "9"),
            ("gen_ai.embeddings.dimension.count", "2"),
            ("server.address", "127.0.0.1"),
            ("server.port", port.as_str()),
        ] {
            assert_eq!(genai.attr(key).as_deref(), Some(value), "{key}");
        }
        assert_eq!(genai.attr("gen_ai.usage.output_tokens"), None);
        assert_eq!(genai.attr("llm.prompt_tokens"), None);
        // The model that answered, "text-embedding-3-small-v2", is neither in the price table
        // nor a dated snapshot of a model that is: no cost, rather than the v1 price.
        assert_eq!(genai.attr("gen_ai.usage.cost.amount"), None);
        let http = attempts(&spans, genai);
        assert_eq!(http.len(), 1);
        assert_eq!(http[0].span.name, "POST /embeddings");

        let tokens = wait_for_points("gen_ai.client.token.usage", fake.addr.port(), |points| {
            !points.is_empty()
        })
        .await;
        assert_eq!(tokens.len(), 1, "input tokens only: {tokens:#?}");
        assert_eq!(tokens[0]["attrs"]["gen_ai.token.type"], "input");
        assert_eq!(tokens[0]["attrs"]["gen_ai.operation.name"], "embeddings");
        assert_eq!(num(&tokens[0]["sum"]), 9.0);
        wait_for_points(
            "gen_ai.client.operation.duration",
            fake.addr.port(),
            |points| !points.is_empty(),
        )
        .await;
    });
}

#[test]
fn embeddings_retry_on_502_then_succeed() {
    run(async {
        let fake = Fake::start(vec![Reply::status(502), Reply::json(out_of_order())]).await;
        let client = client(config(&fake.base_url()));
        let (result, trace_id) = traced(client.embed(&inputs())).await;
        assert_eq!(result.expect("embed").vectors.len(), 3);
        let spans = spans_of(&trace_id, 4).await;
        let genai = span(&spans, "embeddings text-embedding-3-small");
        let http = attempts(&spans, genai);
        assert_eq!(
            http.iter().map(|s| resend_count(s)).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert!(genai.span.events.iter().any(|e| e.name == "llm.retry"));
    });
}

#[test]
fn embeddings_that_do_not_match_the_inputs_are_refused() {
    run(async {
        for body in [
            json!({"data": [{"index": 0, "embedding": [0.0]}]}),
            json!({"data": [
                {"index": 0, "embedding": [0.0]},
                {"index": 0, "embedding": [0.0]},
                {"index": 1, "embedding": [0.0]}
            ]}),
            json!({"data": [
                {"index": 0, "embedding": [0.0]},
                {"index": 1, "embedding": [0.0]},
                {"index": 7, "embedding": [0.0]}
            ]}),
            json!({"data": "nope"}),
        ] {
            let fake = Fake::start(vec![Reply::json(body.clone())]).await;
            let client = client(config(&fake.base_url()));
            let (result, trace_id) = traced(client.embed(&inputs())).await;
            assert!(
                matches!(result, Err(LlmError::InvalidResponse(_))),
                "{body}: {result:?}"
            );
            let spans = spans_of(&trace_id, 3).await;
            let genai = span(&spans, "embeddings text-embedding-3-small");
            assert_eq!(
                genai.attr("error.type").as_deref(),
                Some("invalid_response")
            );
        }
    });
}

#[test]
fn embedding_nothing_makes_no_request() {
    run(async {
        let fake = Fake::start(vec![Reply::status(400)]).await;
        let client = client(config(&fake.base_url()));
        let embeddings = client.embed(&[]).await.expect("empty batch");
        assert!(embeddings.vectors.is_empty());
        assert!(fake.requests().is_empty());
    });
}
