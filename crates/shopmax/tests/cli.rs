//! The `shopmax` binary as a user meets it: help with examples, clear errors and exit codes that
//! say what happened, no colour codes when the output is not a terminal.

use std::process::{Command, Output};

fn shopmax(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shopmax"))
        .args(args)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .expect("shopmax runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_shows_examples_and_the_exit_codes() {
    let output = shopmax(&["--help"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for needed in ["Examples:", "shopmax ask", "shopmax load", "Exit codes"] {
        assert!(text.contains(needed), "{needed} in {text}");
    }
    for sub in ["up", "ask", "trace", "load"] {
        let output = shopmax(&[sub, "--help"]);
        assert!(output.status.success(), "{sub}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Examples:"),
            "{sub}"
        );
    }
}

#[test]
fn a_trace_id_that_is_not_one_is_a_usage_error() {
    let output = shopmax(&["trace", "not-a-trace-id"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("is not a trace id"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn asking_when_nothing_runs_says_so_and_exits_3() {
    let output = shopmax(&["ask", "hello", "--chatbot", "http://127.0.0.1:9"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("cannot reach the chatbot"), "{text}");
    assert!(text.contains("shopmax up"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes off a terminal: {text:?}"
    );
}

#[test]
fn a_trace_backend_that_does_not_answer_exits_3() {
    let output = shopmax(&[
        "trace",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "--jaeger",
        "http://127.0.0.1:9",
        "--wait",
        "1s",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("Jaeger at http://127.0.0.1:9"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn load_against_nothing_exits_3_before_sending_anything() {
    let output = shopmax(&["load", "--requests", "5", "--chatbot", "http://127.0.0.1:9"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("not reachable"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn up_without_the_service_binaries_says_how_to_build_them() {
    let empty = std::env::temp_dir().join(format!("shopmax-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("dir");
    let output = shopmax(&["up", "--bin-dir", empty.to_str().expect("path")]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cargo build --release --bins"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn up_with_a_port_taken_names_the_port_and_exits_3() {
    // Stand-ins for the binaries: the port check comes before anything is started.
    let dir = std::env::temp_dir().join(format!("shopmax-bins-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for name in ["mock-llm", "fraud", "recommendation", "chatbot"] {
        std::fs::write(dir.join(name), "").expect("stand-in");
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let offset = (port - 8080).to_string();
    let output = shopmax(&[
        "up",
        "--bin-dir",
        dir.to_str().expect("path"),
        "--port-offset",
        &offset,
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains(&format!("port {port} (chatbot) is in use")),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn values_out_of_range_are_usage_errors_not_panics() {
    for args in [
        &["load", "--rps", "1e10", "--requests", "1"][..],
        &["load", "--rps", "-1", "--requests", "1"],
        &["load", "--rps", "0.001"],
        &["load", "--concurrency", "10000000", "--requests", "1"],
        &["load", "--concurrency", "0"],
        &["load", "--duration", "0s"],
        &["load", "--requests", "0"],
        &["load", "--chatbot", "notaurl"],
        &["ask", "hi", "--chatbot", "notaurl"],
        &[
            "trace",
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "--jaeger",
            "localhost",
        ],
        &["up", "--port-offset", "60000"],
    ] {
        let output = shopmax(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(!stderr(&output).contains("panicked"), "{args:?}");
    }
}

#[test]
fn smoke_against_a_stack_that_is_not_up_exits_3_naming_what_failed() {
    let nothing = "http://127.0.0.1:9";
    let output = shopmax(&[
        "smoke",
        "--patience",
        "1s",
        "--chatbot",
        nothing,
        "--jaeger",
        nothing,
        "--tempo",
        nothing,
        "--prometheus",
        nothing,
        "--grafana",
        nothing,
        "--loki",
        nothing,
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("FAIL  chatbot ready"), "{stdout}");
    assert!(
        stderr(&output).contains("6 of 6 checks failed"),
        "{}",
        stderr(&output)
    );
}
