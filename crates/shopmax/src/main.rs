//! The `shopmax` command line: parses arguments, runs the subcommand, prints (colour only on a
//! terminal and never with `NO_COLOR`, through `anstream`), and exits with a code that says
//! what happened.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::json;
use shopmax::ask::{self, Question};
use shopmax::fetch::{self, BUILTIN, FetchError, Source};
use shopmax::load::{self, Length, LoadOptions, Mix, Pace};
use shopmax::up::{self, Ports, UpOptions};
use shopmax::waterfall;

/// Exit codes.
mod code {
    /// Everything worked.
    pub(crate) const OK: u8 = 0;
    /// The request or run failed: an error reply, failed load requests.
    pub(crate) const FAILED: u8 = 1;
    /// Bad arguments (clap uses 2 as well).
    pub(crate) const USAGE: u8 = 2;
    /// Something needed is not running or not reachable: a service, a trace backend, a port.
    pub(crate) const UNAVAILABLE: u8 = 3;
    /// The trace was not found (or not whole) in the backend.
    pub(crate) const NO_TRACE: u8 = 4;
}

#[derive(Debug, Parser)]
#[command(
    name = "shopmax",
    version,
    about = "Run ShopMax, ask it a question and read the trace in your terminal, or load it.",
    after_help = "Examples:
  shopmax up                                     # start everything, traces kept in memory
  shopmax ask \"What is the price of Samsung 65 QLED?\"
  shopmax ask \"Does OnePlus 11 support 5G?\" --stream --customer cust-42
  shopmax trace 4bf92f3577b34da6a3ce929d0e0e4736
  shopmax trace 4bf92f3577b34da6a3ce929d0e0e4736 --jaeger http://localhost:16686
  shopmax load --rps 10 --duration 30s --mix catalog

Exit codes: 0 ok, 1 the request or run failed, 2 bad arguments, 3 something is not running or
reachable (a service, the trace backend, a port in use), 4 the trace was not found."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the mock LLM, fraud, recommendation and the chatbot, with a built-in OTLP receiver.
    #[command(after_help = "Examples:
  shopmax up
  shopmax up --port-offset 100                   # chatbot on 8180, receiver on 4417/4418
  OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 shopmax up   # export to your Collector instead")]
    Up(UpArgs),
    /// Ask the chatbot a question, print the answer, then its trace as a waterfall.
    #[command(after_help = "Examples:
  shopmax ask \"What is the price of Samsung 65 QLED?\"
  shopmax ask \"Does OnePlus 11 support 5G?\" --stream
  shopmax ask \"What is the price of Samsung 65 QLED?\" --jaeger http://localhost:16686   # with docker compose")]
    Ask(AskArgs),
    /// Print a trace as a waterfall.
    #[command(after_help = "Examples:
  shopmax trace 4bf92f3577b34da6a3ce929d0e0e4736
  shopmax trace 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01   # a traceresponse header
  shopmax trace 4bf92f3577b34da6a3ce929d0e0e4736 --tempo http://localhost:3200")]
    Trace(TraceArgs),
    /// Check a running `docker compose up` end to end: health, the seed answers, whole traces in
    /// Jaeger and Tempo, metrics in Prometheus, Grafana's data sources.
    #[command(after_help = "Examples:
  docker compose up -d && shopmax smoke
  shopmax smoke --grafana-password \"$GRAFANA_ADMIN_PASSWORD\"

Prints one line per check; exits 1 naming the checks that failed, 3 if the stack is not up.")]
    Smoke(SmokeArgs),
    /// Send realistic traffic to the chatbot and report latency, statuses and the slowest traces.
    #[command(after_help = "Examples:
  shopmax load --rps 10 --duration 30s             # open loop: 10 arrivals a second
  shopmax load --concurrency 8 --requests 500      # closed loop: 8 clients back to back
  shopmax load --mix abusive --rps 5 --duration 20s")]
    Load(LoadArgs),
}

#[derive(Debug, Args)]
struct UpArgs {
    /// Add N to every port (chatbot 8080, recommendation 8081, fraud 8082, mock LLM 8090,
    /// receiver 4317/4318), to run beside something else.
    #[arg(long, default_value_t = 0)]
    port_offset: u16,
    /// Where the service binaries are (default: next to this binary).
    #[arg(long)]
    bin_dir: Option<std::path::PathBuf>,
    /// Serve the unauthenticated `POST /admin/faults` on fraud, recommendation and the mock LLM,
    /// for the fault drills. The services listen on every interface: anyone who can reach this
    /// machine can then turn faults on.
    #[arg(long)]
    fault_admin: bool,
}

/// Where to read traces from.
#[derive(Debug, Args)]
struct SourceArgs {
    /// Read the trace from Jaeger's HTTP API (e.g. http://localhost:16686).
    #[arg(long, conflicts_with_all = ["tempo", "receiver"], value_parser = parse_base_url)]
    jaeger: Option<String>,
    /// Read the trace from Tempo's HTTP API (e.g. http://localhost:3200).
    #[arg(long, conflicts_with = "receiver", value_parser = parse_base_url)]
    tempo: Option<String>,
    /// The built-in receiver of `shopmax up`.
    #[arg(long, default_value = BUILTIN, value_parser = parse_base_url)]
    receiver: String,
    /// How long to wait for the whole trace to arrive (a Collector batches and tail-samples:
    /// give it 20s or more).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    wait: Duration,
}

impl SourceArgs {
    fn source(&self) -> Source {
        match (&self.jaeger, &self.tempo) {
            (Some(url), _) => Source::Jaeger(url.clone()),
            (None, Some(url)) => Source::Tempo(url.clone()),
            (None, None) => Source::Builtin(self.receiver.clone()),
        }
    }
}

#[derive(Debug, Args)]
struct AskArgs {
    /// Print JSON instead of text (for scripts).
    #[arg(long)]
    json: bool,
    /// The question.
    question: String,
    /// Ask as this customer (`customer_id`).
    #[arg(long)]
    customer: Option<String>,
    /// Continue this session (`session_id`).
    #[arg(long)]
    session: Option<String>,
    /// Stream the answer as it is written, with the time to the first token.
    #[arg(long)]
    stream: bool,
    /// The chatbot.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_parser = parse_base_url)]
    chatbot: String,
    /// Only the answer, no trace.
    #[arg(long)]
    no_trace: bool,
    #[command(flatten)]
    source: SourceArgs,
}

#[derive(Debug, Args)]
struct TraceArgs {
    /// Print JSON instead of text (for scripts).
    #[arg(long)]
    json: bool,
    /// The trace id (32 hex digits), or a traceresponse/traceparent header value.
    trace_id: String,
    #[command(flatten)]
    source: SourceArgs,
}

#[derive(Debug, Args)]
struct SmokeArgs {
    /// The chatbot.
    #[arg(long, default_value = "http://localhost:8080", value_parser = parse_base_url)]
    chatbot: String,
    /// Jaeger.
    #[arg(long, default_value = "http://localhost:16686", value_parser = parse_base_url)]
    jaeger: String,
    /// Tempo's API.
    #[arg(long, default_value = "http://localhost:3200", value_parser = parse_base_url)]
    tempo: String,
    /// Prometheus.
    #[arg(long, default_value = "http://localhost:9090", value_parser = parse_base_url)]
    prometheus: String,
    /// Grafana.
    #[arg(long, default_value = "http://localhost:3000", value_parser = parse_base_url)]
    grafana: String,
    /// Loki.
    #[arg(long, default_value = "http://localhost:3100", value_parser = parse_base_url)]
    loki: String,
    /// Grafana's admin user (listing data sources needs it).
    #[arg(long, default_value = "admin")]
    grafana_user: String,
    /// Grafana's admin password (GRAFANA_ADMIN_PASSWORD, as in docker-compose.yml).
    #[arg(
        long,
        env = "GRAFANA_ADMIN_PASSWORD",
        default_value = "admin",
        hide_default_value = true
    )]
    grafana_password: String,
    /// How long to wait for the stack to be up, and for each trace (the Collector decides on a
    /// trace 65 s after its first span).
    #[arg(long, default_value = "150s", value_parser = parse_duration)]
    patience: Duration,
    /// Print JSON instead of text (for scripts).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// Print JSON instead of text (for scripts).
    #[arg(long)]
    json: bool,
    /// Open loop: this many new requests a second (0.01 to 10000), whether or not earlier ones
    /// have answered. The default when neither --rps nor --concurrency is given: 5.
    #[arg(long, conflicts_with = "concurrency", allow_negative_numbers = true)]
    rps: Option<f64>,
    /// Closed loop: this many clients (1 to 10000), each asking again as soon as it is answered.
    #[arg(long, allow_negative_numbers = true)]
    concurrency: Option<i64>,
    /// Run for this long (e.g. 30s, 2m). The default when neither --duration nor --requests is
    /// given: 30s.
    #[arg(long, value_parser = parse_duration, conflicts_with = "requests")]
    duration: Option<Duration>,
    /// Send this many requests.
    #[arg(long, allow_negative_numbers = true)]
    requests: Option<i64>,
    /// Which questions.
    #[arg(long, value_enum, default_value = "catalog")]
    mix: Mix,
    /// The chatbot.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_parser = parse_base_url)]
    chatbot: String,
    /// The chatbot's gateway secret (its CHATBOT_GATEWAY_TOKEN), so customers are counted by
    /// id rather than all as this machine; `shopmax up` uses the default.
    #[arg(long, env = "SHOPMAX_GATEWAY_TOKEN", default_value = up::DEV_GATEWAY_TOKEN, hide_default_value = true)]
    gateway_token: String,
}

/// An http(s) base URL, for `--chatbot`, `--receiver`, `--jaeger` and `--tempo`.
fn parse_base_url(text: &str) -> Result<String, String> {
    match reqwest::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Ok(text.trim_end_matches('/').to_owned())
        }
        _ => Err(format!(
            "{text:?} is not an http(s) URL like http://127.0.0.1:8080"
        )),
    }
}

/// `30s`, `2m`, `1500ms`, `1h`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 2m or 1500ms"))?;
    let seconds = match unit {
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?}: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => run_up(args).await,
        Command::Ask(args) => {
            let json = args.json;
            run_ask(args, json).await
        }
        Command::Trace(args) => {
            let json = args.json;
            run_trace(args, json).await
        }
        Command::Load(args) => {
            let json = args.json;
            run_load(args, json).await
        }
        Command::Smoke(args) => run_smoke(args).await,
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            let code = if error.downcast_ref::<up::UpError>().is_some() {
                code::UNAVAILABLE
            } else {
                code::FAILED
            };
            let style = anstyle::AnsiColor::Red.on_default().bold();
            anstream::eprintln!("{style}error:{style:#} {error:#}");
            ExitCode::from(code)
        }
    }
}

async fn run_up(args: UpArgs) -> anyhow::Result<u8> {
    let ports = match Ports::with_offset(args.port_offset) {
        Ok(ports) => ports,
        Err(error) => {
            anstream::eprintln!("error: {error}");
            return Ok(code::USAGE);
        }
    };
    let options = UpOptions {
        ports,
        fault_admin: args.fault_admin,
        bin_dir: args.bin_dir.unwrap_or_else(up::default_bin_dir),
        external_endpoint: std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty()),
        gateway_token: std::env::var("SHOPMAX_GATEWAY_TOKEN")
            .unwrap_or_else(|_| up::DEV_GATEWAY_TOKEN.to_owned()),
    };
    up::up(options).await?;
    Ok(code::OK)
}

async fn run_ask(args: AskArgs, json: bool) -> anyhow::Result<u8> {
    let client = reqwest::Client::new();
    let question = Question {
        chatbot: args.chatbot.clone(),
        text: args.question.clone(),
        customer: args.customer.clone(),
        session: args.session.clone(),
        stream: args.stream,
    };
    let streaming_to_terminal = args.stream && !json;
    let answer = match ask::ask(&client, &question, |text| {
        if streaming_to_terminal {
            use std::io::Write as _;
            anstream::print!("{text}");
            let _ = std::io::stdout().flush();
        }
    })
    .await
    {
        Ok(answer) => answer,
        Err(error @ ask::AskError::Unreachable { .. }) => {
            anstream::eprintln!("error: {error}");
            if json {
                println!("{}", json!({ "error": error.to_string() }));
            }
            return Ok(code::UNAVAILABLE);
        }
        Err(error) => return Err(error.into()),
    };
    let failed = !(200..300).contains(&answer.status) || answer.error().is_some();
    if !json {
        if args.stream {
            anstream::println!();
        } else if !answer.text.is_empty() {
            anstream::println!("{}", answer.text);
        }
        if let Some((code, message)) = answer.error() {
            let style = anstyle::AnsiColor::Red.on_default().bold();
            // A streamed answer that fails after its start still has its 200 status.
            let label = if (200..300).contains(&answer.status) {
                "stream error".to_owned()
            } else {
                format!("HTTP {}", answer.status)
            };
            anstream::println!("{style}{label} {code}{style:#}: {message}");
        }
        let cost = answer.reply.get("cost").and_then(|c| {
            Some(format!(
                "{} {}",
                waterfall::money(&c.get("amount")?.to_string()),
                c.get("currency")?.as_str()?
            ))
        });
        let mut facts = vec![
            format!("HTTP {}", answer.status),
            format!("{:.0} ms", answer.took.as_secs_f64() * 1e3),
        ];
        if let Some(first) = answer.first_text {
            facts.push(format!(
                "first token after {:.0} ms",
                first.as_secs_f64() * 1e3
            ));
        }
        if let Some(cost) = cost {
            facts.push(format!("cost {cost}"));
        }
        let dim = anstyle::Style::new().dimmed();
        anstream::println!("{dim}{}{dim:#}\n", facts.join(" · "));
    }
    let mut trace_json = serde_json::Value::Null;
    let mut code = if failed { code::FAILED } else { code::OK };
    if !args.no_trace {
        match &answer.trace_id {
            None => {
                anstream::eprintln!("the reply named no trace id (is the chatbot's tracing off?)");
                code = code.max(code::NO_TRACE);
            }
            Some(trace_id) => match show_trace(&client, &args.source, trace_id, json).await {
                Ok((value, complete)) => {
                    trace_json = value;
                    if !complete && !json {
                        anstream::eprintln!(
                            "(the trace may be incomplete: not every span had arrived after {:?}; try `shopmax trace {trace_id}` again)",
                            args.source.wait
                        );
                    }
                }
                Err(exit) => code = code.max(exit),
            },
        }
    }
    if json {
        println!(
            "{}",
            json!({
                "status": answer.status,
                "answer": answer.text,
                "trace_id": answer.trace_id,
                "took_ms": answer.took.as_secs_f64() * 1e3,
                "first_text_ms": answer.first_text.map(|d| d.as_secs_f64() * 1e3),
                "reply": answer.reply,
                "trace": trace_json,
            })
        );
    }
    Ok(code)
}

/// Waits for the trace and prints it (text) or returns it (JSON); the exit code on failure.
async fn show_trace(
    client: &reqwest::Client,
    source_args: &SourceArgs,
    trace_id: &str,
    json: bool,
) -> Result<(serde_json::Value, bool), u8> {
    let source = source_args.source();
    match fetch::wait_for_trace(client, &source, trace_id, None, source_args.wait).await {
        Ok((trace, complete)) => {
            if json {
                Ok((trace_to_json(&trace, complete), complete))
            } else {
                anstream::print!("{}", waterfall::render(&trace));
                Ok((serde_json::Value::Null, complete))
            }
        }
        Err(error) => {
            match &error {
                FetchError::NotFound(_) => {
                    anstream::eprintln!("error: {error} in {}", source.describe());
                }
                _ => anstream::eprintln!("error: {error}"),
            }
            if json {
                println!("{}", json!({ "error": error.to_string() }));
            }
            Err(match error {
                FetchError::NotFound(_) => code::NO_TRACE,
                FetchError::Unreachable { .. } => code::UNAVAILABLE,
                FetchError::Invalid { .. } => code::FAILED,
            })
        }
    }
}

fn trace_to_json(trace: &shopmax::trace::Trace, complete: bool) -> serde_json::Value {
    let mut spans: Vec<_> = trace.spans.iter().collect();
    spans.sort_by_key(|s| (s.start_ns, s.span_id.clone()));
    json!({
        "trace_id": trace.trace_id,
        "complete": complete,
        "spans": spans.iter().map(|s| json!({
            "span_id": s.span_id,
            "parent_id": s.parent_id,
            "service": s.service,
            "name": s.name,
            "kind": format!("{:?}", s.kind).to_lowercase(),
            "start_unix_nano": s.start_ns,
            "duration_ns": s.duration_ns(),
            "error": s.error,
            "attributes": s.attributes,
        })).collect::<Vec<_>>(),
    })
}

async fn run_trace(args: TraceArgs, json: bool) -> anyhow::Result<u8> {
    let Some(trace_id) = fetch::normalise_trace_id(&args.trace_id) else {
        anstream::eprintln!(
            "error: {:?} is not a trace id: 32 hex digits, or a traceresponse header value",
            args.trace_id
        );
        return Ok(code::USAGE);
    };
    let client = reqwest::Client::new();
    match show_trace(&client, &args.source, &trace_id, json).await {
        Ok((value, complete)) => {
            if json {
                println!("{value}");
            }
            if complete {
                Ok(code::OK)
            } else {
                anstream::eprintln!(
                    "the trace is not whole: spans whose parent is missing are shown as roots (waited {:.1} s; --wait longer, or try again)",
                    args.source.wait.as_secs_f64()
                );
                Ok(code::NO_TRACE)
            }
        }
        Err(code) => Ok(code),
    }
}

async fn run_load(args: LoadArgs, json: bool) -> anyhow::Result<u8> {
    let usage = |message: &str| {
        anstream::eprintln!("error: {message}");
        Ok(code::USAGE)
    };
    let pace = match (args.rps, args.concurrency) {
        (Some(rps), _) if (0.01..=10_000.0).contains(&rps) => Pace::Open(rps),
        (Some(_), _) => return usage("--rps must be between 0.01 and 10000"),
        (None, Some(n)) if (1..=10_000).contains(&n) => {
            Pace::Closed(usize::try_from(n).unwrap_or(1))
        }
        (None, Some(_)) => return usage("--concurrency must be between 1 and 10000"),
        (None, None) => Pace::Open(5.0),
    };
    let length = match (args.duration, args.requests) {
        (_, Some(n)) if n >= 1 => Length::Requests(n.unsigned_abs()),
        (_, Some(_)) => return usage("--requests must be at least 1"),
        (Some(d), None) if !d.is_zero() => Length::Time(d),
        (Some(_), None) => return usage("--duration must be more than 0"),
        (None, None) => Length::Time(Duration::from_secs(30)),
    };
    // Fail fast when nothing answers, instead of a run of connection errors.
    let ready = format!("{}/readyz", args.chatbot);
    let reachable = reqwest::Client::new()
        .get(&ready)
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    if let Err(error) = reachable {
        let cause = fetch::root_cause(&error);
        anstream::eprintln!(
            "error: the chatbot is not reachable at {}: {cause} (is `shopmax up` running?)",
            args.chatbot
        );
        return Ok(code::UNAVAILABLE);
    }
    let options = LoadOptions {
        chatbot: args.chatbot,
        pace,
        length,
        mix: args.mix,
        gateway_token: Some(args.gateway_token).filter(|t| !t.is_empty()),
        progress: !json,
    };
    let outcome = load::run(&options).await;
    if json {
        println!("{}", outcome.to_json());
    } else {
        anstream::print!("{}", load::report(&outcome));
    }
    if outcome.interrupted && !json {
        anstream::eprintln!("interrupted: the report covers the requests sent until then");
    }
    Ok(if outcome.failed() > 0 || outcome.skipped > 0 {
        code::FAILED
    } else {
        code::OK
    })
}

async fn run_smoke(args: SmokeArgs) -> anyhow::Result<u8> {
    let endpoints = shopmax::smoke::Endpoints {
        chatbot: args.chatbot,
        jaeger: args.jaeger,
        tempo: args.tempo,
        prometheus: args.prometheus,
        grafana: args.grafana,
        loki: args.loki,
        grafana_user: args.grafana_user,
        grafana_password: args.grafana_password,
        patience: args.patience,
    };
    let json = args.json;
    let ok = anstyle::AnsiColor::Green.on_default().bold();
    let bad = anstyle::AnsiColor::Red.on_default().bold();
    let checks = shopmax::smoke::run(&endpoints, |check| {
        if json {
            return;
        }
        match &check.failure {
            None => anstream::println!("{ok}ok{ok:#}    {}", check.name),
            Some(why) => anstream::println!("{bad}FAIL{bad:#}  {}: {why}", check.name),
        }
    })
    .await;
    let failed: Vec<&shopmax::smoke::Check> =
        checks.iter().filter(|c| c.failure.is_some()).collect();
    if json {
        println!(
            "{}",
            json!({
                "passed": checks.len() - failed.len(),
                "failed": failed.iter().map(|c| json!({"check": c.name, "why": c.failure})).collect::<Vec<_>>(),
            })
        );
    }
    if failed.is_empty() {
        if !json {
            anstream::println!("\nall {} checks passed", checks.len());
        }
        return Ok(code::OK);
    }
    if !json {
        let names: Vec<&str> = failed.iter().map(|c| c.name.as_str()).collect();
        anstream::eprintln!(
            "\n{} of {} checks failed: {}",
            failed.len(),
            checks.len(),
            names.join("; ")
        );
    }
    // Nothing answered at all: the stack is not up.
    let down = checks.iter().all(|c| c.failure.is_some());
    Ok(if down {
        code::UNAVAILABLE
    } else {
        code::FAILED
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
