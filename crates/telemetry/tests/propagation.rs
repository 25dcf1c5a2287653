//! W3C propagation through the real inbound layer and outbound client: a request with given
//! headers enters the harness service, which calls a capturing downstream; we check what the
//! downstream received and what spans were exported.

mod common;
// The harness the `w3c_conformance` example serves: the same code, driven here.
#[path = "../examples/w3c_harness/mod.rs"]
mod w3c_harness;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{Capture, TestEnv, WAIT, capture_server, header_values, serve, start, vars};
use rstest::rstest;
use serde_json::json;
use telemetry::TracedClient;

struct Env {
    env: TestEnv,
    app: SocketAddr,
    capture: Capture,
    downstream: SocketAddr,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let env = start(|sink| {
            vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", sink.grpc_endpoint()),
                ("OTEL_METRICS_EXPORTER", "none".into()),
                ("OTEL_LOGS_EXPORTER", "none".into()),
                // `localhost` is ours; the same server reached as 127.0.0.1 plays an external API.
                ("TELEMETRY_INTERNAL_HOSTS", "localhost".into()),
            ])
        });
        let (app, capture, downstream) = env.rt.block_on(async {
            let client = TracedClient::new(reqwest::Client::new(), env.policy.clone());
            let app = serve(w3c_harness::router(client)).await;
            let (capture, downstream) = capture_server().await;
            (app, capture, downstream)
        });
        Env {
            env,
            app,
            capture,
            downstream,
        }
    })
}

/// Sends `headers` to the harness, which calls the downstream at `host` and `path`; returns the
/// headers the downstream received.
fn relay(headers: &[(&str, &str)], host: &str, path: &str) -> axum::http::HeaderMap {
    // Tests run in parallel against one downstream: a unique path tells their requests apart.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = format!("{path}/{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let path = path.as_str();
    let e = env();
    e.env.rt.block_on(async {
        let mut request = reqwest::Client::new().post(format!("http://{}/test", e.app));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let url = format!("http://{host}:{}{path}", e.downstream.port());
        let response = request
            .json(&json!([{ "url": url, "arguments": [] }]))
            .send()
            .await
            .expect("harness reachable");
        assert_eq!(response.status(), 200);
        e.capture.last_for(path).expect("downstream called")
    })
}

const TRACE_ID: &str = "12345678901234567890123456789012";
const PARENT: &str = "00-12345678901234567890123456789012-1234567890123456-01";

fn parts(traceparent: &str) -> (String, String, String, String) {
    let p: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(p.len(), 4, "{traceparent}");
    (p[0].into(), p[1].into(), p[2].into(), p[3].into())
}

#[rstest]
#[case::valid(&[("traceparent", PARENT)], true)]
#[case::ows_around_value(&[("traceparent", " \t00-12345678901234567890123456789012-1234567890123456-01\t ")], true)]
#[case::future_version_with_extra(&[("traceparent", "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like")], true)]
#[case::two_headers(&[("traceparent", PARENT), ("traceparent", "00-12345678901234567890123456789099-1234567890123456-01")], false)]
#[case::uppercase(&[("traceparent", "00-12345678901234567890123456789ABC-1234567890123456-01")], false)]
#[case::version_ff(&[("traceparent", "ff-12345678901234567890123456789012-1234567890123456-01")], false)]
#[case::zero_trace_id(&[("traceparent", "00-00000000000000000000000000000000-1234567890123456-01")], false)]
#[case::zero_parent_id(&[("traceparent", "00-12345678901234567890123456789012-0000000000000000-01")], false)]
#[case::version_00_too_long(&[("traceparent", "00-12345678901234567890123456789012-1234567890123456-01-")], false)]
#[case::short(&[("traceparent", "00-1234567890123456789012345678901-1234567890123456-01")], false)]
#[case::huge(&[("traceparent", &*"0".repeat(60_000))], false)]
fn traceparent_is_continued_only_when_valid(
    #[case] headers: &[(&str, &str)],
    #[case] continued: bool,
) {
    let received = relay(headers, "localhost", "/tp");
    let sent = header_values(&received, "traceparent");
    assert_eq!(sent.len(), 1, "exactly one traceparent goes out: {sent:?}");
    let (version, trace_id, parent_id, _flags) = parts(&sent[0]);
    assert_eq!(version, "00");
    assert_eq!(trace_id.len(), 32);
    assert_ne!(
        parent_id, "1234567890123456",
        "the parent is our client span"
    );
    assert_eq!(trace_id == TRACE_ID, continued, "{sent:?}");
}

#[rstest]
// The caller's random flag is forwarded as received; a trace we start is ours and random.
#[case::sampled_random_kept(Some("03"), "03")]
#[case::not_random_stays_not_random(Some("01"), "01")]
#[case::unknown_bits_zeroed(Some("ff"), "03")]
#[case::new_trace_is_random_and_sampled(None, "03")]
fn trace_flags_follow_level_2(#[case] incoming: Option<&str>, #[case] expected: &str) {
    let tp = incoming.map(|f| format!("00-{TRACE_ID}-1234567890123456-{f}"));
    let headers: Vec<(&str, &str)> = tp.iter().map(|v| ("traceparent", v.as_str())).collect();
    let received = relay(&headers, "localhost", "/flags");
    let (_, _, _, flags) = parts(&header_values(&received, "traceparent")[0]);
    assert_eq!(flags, expected);
}

#[rstest]
#[case::joined(&[("tracestate", "foo=1"), ("tracestate", "bar=2")], Some("foo=1,bar=2"))]
#[case::ows_and_empty_members(&[("tracestate", " foo=1 ,, bar=2\t")], Some("foo=1,bar=2"))]
// Level 2 key grammar: '@' anywhere but first, long vendor parts; the stock TraceState refuses these.
#[case::level_2_keys(&[("tracestate", "foo@@bar=1,bar=2")], Some("foo@@bar=1,bar=2"))]
#[case::long_vendor_part(&[("tracestate", &*format!("foo=1,t@{}=1", "v".repeat(15)))], Some(&*format!("foo=1,t@{}=1", "v".repeat(15))))]
#[case::invalid_key_discards_all(&[("tracestate", "foo=1,BAR=2")], None)]
#[case::bad_value_discards_all(&[("tracestate", "foo=1,bar=a=b")], None)]
#[case::thirty_three_members_discarded(&[("tracestate", &*(0..33).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(","))], None)]
#[case::thirty_two_members_kept(&[("tracestate", &*(0..32).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(","))], Some(&*(0..32).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(",")))]
fn tracestate_is_joined_or_discarded_never_truncated(
    #[case] states: &[(&str, &str)],
    #[case] expected: Option<&str>,
) {
    let mut headers = vec![("traceparent", PARENT)];
    headers.extend_from_slice(states);
    let received = relay(&headers, "localhost", "/ts");
    let (_, trace_id, _, _) = parts(&header_values(&received, "traceparent")[0]);
    assert_eq!(
        trace_id, TRACE_ID,
        "an invalid tracestate never drops the traceparent"
    );
    let sent = header_values(&received, "tracestate");
    match expected {
        Some(value) => assert_eq!(sent, vec![value.to_owned()]),
        None => assert!(sent.is_empty(), "{sent:?}"),
    }
}

#[test]
fn baggage_passes_through_to_64_members_with_properties_and_encoding() {
    let mut members: Vec<String> = (0..63).map(|i| format!("k{i}=v{i}")).collect();
    members.push("note=a%20b%2Cc=d;prop1;prop2=x".into());
    members.push("k64=dropped".into());
    let header = members.join(",");
    let received = relay(
        &[("traceparent", PARENT), ("baggage", &header)],
        "localhost",
        "/bag",
    );
    let sent = header_values(&received, "baggage");
    assert_eq!(sent.len(), 1);
    let out: Vec<&str> = sent[0].split(',').collect();
    assert_eq!(out.len(), 64, "64 members pass, the 65th is dropped whole");
    assert!(out.contains(&"k0=v0"));
    assert!(!sent[0].contains("k64"));
    let note = out
        .iter()
        .find(|m| m.starts_with("note="))
        .expect("note kept");
    assert_eq!(*note, "note=a%20b%2Cc=d;prop1;prop2=x");
}

#[test]
fn malformed_baggage_members_are_skipped_and_the_rest_kept() {
    let received = relay(
        &[(
            "baggage",
            "good=1,bad key=2,noequals,worse=\"q\",%zz=3,ok=two%3D2",
        )],
        "localhost",
        "/bag2",
    );
    let sent = header_values(&received, "baggage");
    assert_eq!(sent.len(), 1);
    // Baggage order carries no meaning, and '=' is a legal value octet, so it is not encoded.
    let mut members: Vec<&str> = sent[0].split(',').collect();
    members.sort_unstable();
    assert_eq!(members, vec!["%zz=3", "good=1", "ok=two=2"]);
}

#[test]
fn external_hosts_get_no_trace_headers_and_never_baggage() {
    let received = relay(
        &[
            ("traceparent", PARENT),
            ("tracestate", "foo=1"),
            ("baggage", "user.id=42"),
        ],
        "127.0.0.1",
        "/external",
    );
    assert!(header_values(&received, "traceparent").is_empty());
    assert!(header_values(&received, "tracestate").is_empty());
    assert!(header_values(&received, "baggage").is_empty());
}

#[test]
fn inbound_to_outbound_keeps_trace_id_and_parents_correctly() {
    // A trace id of its own: other tests reuse PARENT concurrently.
    const OWN_TRACE: &str = "abcdef01234567890123456789abcdef";
    let parent = format!("00-{OWN_TRACE}-1234567890123456-01");
    let received = relay(
        &[
            ("traceparent", &parent),
            ("baggage", "session.id=s-1,user.id=u-9,other=x"),
        ],
        "localhost",
        "/parent",
    );
    let (_, trace_id, outgoing_parent, _) = parts(&header_values(&received, "traceparent")[0]);
    assert_eq!(trace_id, OWN_TRACE);

    let e = env();
    let spans = e.env.rt.block_on(
        e.env
            .sink
            .wait_for_spans(2, WAIT, |s| s.trace_id() == OWN_TRACE),
    );
    assert_eq!(spans.len(), 2, "one server and one client span: {spans:?}");
    let server = spans
        .iter()
        .find(|s| s.span.kind == 2)
        .expect("server span");
    let client = spans
        .iter()
        .find(|s| s.span.kind == 3)
        .expect("client span");
    assert_eq!(server.span.name, "POST /test");
    assert_eq!(client.span.name, "POST");
    assert_eq!(
        server.parent_span_id(),
        "1234567890123456",
        "parented on the caller"
    );
    assert_eq!(server.span.kind, 2, "SERVER");
    assert_eq!(client.span.kind, 3, "CLIENT");
    assert_eq!(client.parent_span_id(), server.span_id());
    assert_eq!(
        client.span_id(),
        outgoing_parent,
        "downstream's parent is our client span"
    );
    assert_eq!(server.attr("http.route").as_deref(), Some("/test"));
    assert_eq!(server.attr("http.request.method").as_deref(), Some("POST"));
    assert_eq!(
        server.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(server.attr("url.path").as_deref(), Some("/test"));
    assert_eq!(server.attr("client.address").as_deref(), Some("127.0.0.1"));
    assert!(server.attr("server.address").is_some());
    assert!(
        server.attr("user_agent.original").is_none(),
        "reqwest sends no UA by default"
    );
    assert_eq!(client.attr("server.address").as_deref(), Some("localhost"));
    assert_eq!(
        client.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    // Allow-listed baggage became attributes on both spans; the rest did not.
    for span in [server, client] {
        assert_eq!(
            span.attr("session.id").as_deref(),
            Some("s-1"),
            "{}",
            span.span.name
        );
        assert_eq!(span.attr("user.id").as_deref(), Some("u-9"));
        assert_eq!(span.attr("other"), None);
    }
}

#[test]
fn bad_harness_input_gets_a_json_400() {
    let e = env();
    e.env.rt.block_on(async {
        for body in [
            "not json",
            r#"[{"url": "ftp://x", "arguments": 1}]"#,
            r#"[{"uri": 1}]"#,
        ] {
            let response = reqwest::Client::new()
                .post(format!("http://{}/test", e.app))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("reachable");
            assert_eq!(response.status(), 400, "{body}");
            let json: serde_json::Value = response.json().await.expect("json body");
            assert_eq!(json["error"]["code"], "bad_request");
        }
    });
}

#[test]
fn a_nonstandard_method_names_the_server_span_http_and_keeps_the_original() {
    const OWN_TRACE: &str = "0123456789abcdef0123456789abcd01";
    let e = env();
    let status = e.env.rt.block_on(async {
        reqwest::Client::new()
            .request(
                reqwest::Method::from_bytes(b"PURGE").expect("method"),
                format!("http://{}/test", e.app),
            )
            .header("traceparent", format!("00-{OWN_TRACE}-1234567890123456-01"))
            .send()
            .await
            .expect("harness reachable")
            .status()
    });
    assert_eq!(status, 405);
    let spans = e.env.rt.block_on(
        e.env
            .sink
            .wait_for_spans(1, WAIT, |s| s.trace_id() == OWN_TRACE),
    );
    let server = spans.first().expect("the server span");
    assert_eq!(server.span.name, "HTTP /test");
    assert_eq!(
        server.attr("http.request.method").as_deref(),
        Some("_OTHER")
    );
    assert_eq!(
        server.attr("http.request.method_original").as_deref(),
        Some("PURGE")
    );
}
