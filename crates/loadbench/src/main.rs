//! `loadbench`: what tracing costs the ShopMax chain, measured end to end on one machine.
//!
//! It builds the services (release), starts the chatbot, fraud and recommendation as separate
//! processes against a zero-latency OpenAI-compatible stub and an OTLP/gRPC receiver that only
//! counts, puts the seed question under load, and reads each process's CPU time and memory from
//! `/proc`. Every configuration runs in one invocation, in alternating order over `--rounds`, and
//! the table shows medians, so the ratios compare like with like:
//!
//! - `bare`: the same three hops in plain axum + reqwest (this binary, `bare` role), no telemetry;
//! - `untraced`: our services with `OTEL_SDK_DISABLED=true`;
//! - `traced`: 100% sampling, spans, metrics and logs exported over OTLP/gRPC to a receiver that
//!   accepts; `collector-down`: nothing listens; `collector-unavailable`: every export is refused
//!   with UNAVAILABLE; `collector-stuck`: exports never get an answer.
//!
//! Two diagnostic configurations split the traced cost by signal and run only when named with
//! `--only`: `traces-only` (metrics and logs exporters off) and `no-export` (spans are made and
//! propagated, nothing is exported).
//!
//! It is a benchmark, not a test: it prints numbers and never fails on them.
//!
//! # Layout
//! - `stubs`: the LLM stub, and the receiver of the `stubs` role.
//! - `receiver`: the counting OTLP/gRPC receiver of the measured runs.
//! - `bare`: the bare baseline services.
//! - `procs`: child processes, readiness, `/proc` readings.
//! - `load`: the load generator.

#![expect(
    clippy::cast_precision_loss,
    reason = "counts, bytes and microseconds in a report, all far below 2^52"
)]

mod bare;
mod load;
mod procs;
mod receiver;
mod stubs;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};

use procs::Service;
use receiver::{Mode, Receiver};

#[derive(Debug, Parser)]
#[command(about = "Load benchmark of the ShopMax chain, traced against untraced against bare")]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    /// Seconds of measured load per configuration and round.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of unmeasured load before each measurement.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Rounds over all configurations; the table shows medians.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Configurations to run (all but the diagnostic `traces-only` and `no-export` by default).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Setup>,
    /// Use the binaries already in target/release instead of building them.
    #[arg(long)]
    no_build: bool,
    /// Keep each service's log (stderr) in this directory, as `<configuration>-<service>.log`.
    #[arg(long)]
    logs: Option<PathBuf>,
    /// Extra environment for our services in every configuration, as NAME=VALUE (repeatable):
    /// to compare settings such as `OTEL_BSP_MAX_QUEUE_SIZE` or `_RJEM_MALLOC_CONF`.
    #[arg(long = "service-env", value_parser = parse_env_pair)]
    service_env: Vec<(String, String)>,
}

fn parse_env_pair(pair: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {pair:?}")),
    }
}

#[derive(Debug, Subcommand)]
enum Role {
    /// Runs one bare baseline service (started by the benchmark itself).
    #[command(hide = true)]
    Bare {
        #[arg(value_enum)]
        role: bare::Role,
        port: u16,
        fraud: String,
        recommendation: String,
        llm: String,
    },
    /// Serves the LLM stub and the counting OTLP receiver until killed, and prints their
    /// addresses: for profiling one service by hand (under `valgrind --tool=callgrind`, say).
    Stubs,
}

/// One configuration of the system under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Setup {
    Bare,
    Untraced,
    Traced,
    CollectorDown,
    CollectorUnavailable,
    CollectorStuck,
    TracesOnly,
    NoExport,
}

impl Setup {
    const DEFAULT: [Self; 6] = [
        Self::Bare,
        Self::Untraced,
        Self::Traced,
        Self::CollectorDown,
        Self::CollectorUnavailable,
        Self::CollectorStuck,
    ];

    fn slug(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::Untraced => "untraced",
            Self::Traced => "traced",
            Self::CollectorDown => "collector-down",
            Self::CollectorUnavailable => "collector-unavailable",
            Self::CollectorStuck => "collector-stuck",
            Self::TracesOnly => "traces-only",
            Self::NoExport => "no-export",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare axum + reqwest",
            Self::Untraced => "untraced (OTEL_SDK_DISABLED)",
            Self::Traced => "traced, collector up",
            Self::CollectorDown => "traced, collector down",
            Self::CollectorUnavailable => "traced, collector UNAVAILABLE",
            Self::CollectorStuck => "traced, collector stuck",
            Self::TracesOnly => "traced, spans only (no metrics, logs)",
            Self::NoExport => "spans made, nothing exported",
        }
    }
}

/// What one configuration measured in one round.
#[derive(Debug, Clone)]
struct Sample {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: u64,
    /// CPU µs per request of chatbot (front), fraud, recommendation.
    cpu_us: [f64; 3],
    rss_before_mb: [f64; 3],
    rss_after_mb: [f64; 3],
    ready_ms: [f64; 3],
    /// Spans the receiver counted per request sent (warm-up included).
    spans_per_request: f64,
    /// CPU µs per request of this process: the load generator, the LLM stub and the receiver,
    /// which share the machine with the services.
    bench_cpu_us: f64,
}

// The same allocator as the services, so the bare baseline differs from them only in what the
// comparison is about: telemetry and validation.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Role::Bare {
        role,
        port,
        fraud,
        recommendation,
        llm,
    }) = cli.role
    {
        return bare::serve(role, port, [fraud, recommendation, llm]).await;
    }
    if let Some(Role::Stubs) = cli.role {
        let llm = stubs::llm().await?;
        let sink = stubs::collector().await?;
        println!("LLM_BASE_URL=http://{llm}/v1");
        println!("OTEL_EXPORTER_OTLP_ENDPOINT={}", sink.grpc_endpoint());
        println!("OTLP_HTTP_ENDPOINT={}", sink.http_endpoint());
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            eprintln!("spans received: {}", sink.span_count());
        }
    }
    let bin_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    if !cli.no_build {
        build()?;
    }
    let setups: Vec<Setup> = if cli.only.is_empty() {
        Setup::DEFAULT.to_vec()
    } else {
        cli.only.clone()
    };
    let llm = stubs::llm().await?;
    let ticks = procs::ticks_per_sec();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); setups.len()];
    for round in 0..cli.rounds {
        // Alternate the order so drift (thermal, other load) does not favour one configuration.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..setups.len()).collect()
        } else {
            (0..setups.len()).rev().collect()
        };
        for i in order {
            let setup = setups[i];
            eprintln!("round {}/{}: {}", round + 1, cli.rounds, setup.name());
            let sample = measure(&cli, setup, &bin_dir, llm, ticks).await?;
            samples[i].push(sample);
        }
    }
    print_table(&cli, &setups, &samples);
    // A failed request means the setup is broken (or export blocked a request), and so does an
    // accepting receiver that got no span (export refused, by a setting such as compression):
    // every number above then measures the wrong thing. Say so and exit non-zero.
    let broken: Vec<String> = setups
        .iter()
        .zip(&samples)
        .filter_map(|(setup, rounds)| {
            let failed: u64 = rounds.iter().map(|s| s.failed).sum();
            let exporting = matches!(setup, Setup::Traced | Setup::TracesOnly);
            if failed > 0 {
                Some(format!("{} ({failed} requests failed)", setup.name()))
            } else if exporting && rounds.iter().any(|s| s.spans_per_request == 0.0) {
                Some(format!("{} (no span reached the receiver)", setup.name()))
            } else {
                None
            }
        })
        .collect();
    anyhow::ensure!(
        broken.is_empty(),
        "broken configurations: {}; run with --logs to see why",
        broken.join(", ")
    );
    Ok(())
}

/// `cargo build --release` of the three services (this binary is already built).
fn build() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "chatbot",
            "-p",
            "fraud",
            "-p",
            "recommendation",
        ])
        .status()?;
    anyhow::ensure!(status.success(), "building the services failed");
    Ok(())
}

fn vars(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

async fn measure(
    cli: &Cli,
    setup: Setup,
    bin_dir: &Path,
    llm: std::net::SocketAddr,
    ticks: u64,
) -> anyhow::Result<Sample> {
    let ports = [
        procs::free_port()?,
        procs::free_port()?,
        procs::free_port()?,
    ];
    let [front_port, fraud_port, reco_port] = ports;
    let url = |port: u16| format!("http://127.0.0.1:{port}");
    let llm_url = format!("http://{llm}/v1");

    let sink = match setup {
        Setup::Traced | Setup::TracesOnly => Some(Receiver::start(Mode::Up).await?),
        Setup::CollectorUnavailable => Some(Receiver::start(Mode::Unavailable).await?),
        Setup::CollectorStuck => Some(Receiver::start(Mode::Stuck).await?),
        _ => None,
    };
    let collector = match setup {
        // A port nothing listens on.
        Setup::CollectorDown => Some(format!("http://127.0.0.1:{}", procs::free_port()?)),
        Setup::Bare | Setup::Untraced => None,
        // Exporters are off, so the endpoint is never dialled.
        Setup::NoExport => Some("http://127.0.0.1:9".to_owned()),
        _ => sink.as_ref().map(Receiver::endpoint),
    };

    let mut services = if setup == Setup::Bare {
        let me = std::env::current_exe()?;
        let upstreams = [url(fraud_port), url(reco_port), llm_url.clone()];
        let start = |name, role: &str, port: u16| {
            let mut args = vec!["bare".to_owned(), role.to_owned(), port.to_string()];
            args.extend(upstreams.iter().cloned());
            let log = log_path(cli, setup, name);
            Service::start(name, port, &me, &args, &[], log.as_deref())
        };
        vec![
            start("front", "front", front_port)?,
            start("fraud", "fraud", fraud_port)?,
            start("recommendation", "recommendation", reco_port)?,
        ]
    } else {
        let mut common = vec![("LLM_BASE_URL", llm_url.clone())];
        match &collector {
            None => common.push(("OTEL_SDK_DISABLED", "true".to_owned())),
            Some(endpoint) => common.push(("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone())),
        }
        let off = match setup {
            Setup::TracesOnly => &["OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER"][..],
            Setup::NoExport => &[
                "OTEL_TRACES_EXPORTER",
                "OTEL_METRICS_EXPORTER",
                "OTEL_LOGS_EXPORTER",
            ],
            _ => &[],
        };
        common.extend(off.iter().map(|k| (*k, "none".to_owned())));
        let service = |name: &'static str, port: u16, extra: &[(&str, String)]| {
            let mut env = common.clone();
            env.push(("PORT", port.to_string()));
            env.extend(extra.iter().cloned());
            let mut env = vars(&env);
            env.extend(cli.service_env.iter().cloned());
            let log = log_path(cli, setup, name);
            Service::start(name, port, &bin_dir.join(name), &[], &env, log.as_deref())
        };
        vec![
            service(
                "chatbot",
                front_port,
                &[
                    ("FRAUD_URL", url(fraud_port)),
                    ("RECOMMENDATION_URL", url(reco_port)),
                    // The bench plays a trusted gateway that vouches for its customers, so
                    // fraud's velocity rule counts each varied customer id; an untrusted caller's
                    // body id is counted by client address, and every request would be blocked.
                    ("CHATBOT_TRUSTED_CALLERS", "127.0.0.1".to_owned()),
                ],
            )?,
            service("fraud", fraud_port, &[])?,
            service("recommendation", reco_port, &[])?,
        ]
    };

    let client = reqwest::Client::new();
    let mut ready_ms = [0.0; 3];
    for (i, service) in services.iter_mut().enumerate() {
        ready_ms[i] = service.ready(&client).await?.as_secs_f64() * 1e3;
    }
    let rss_before_mb = services_map(&services, |s| mb(s.rss()));
    let chat_url = format!("{}/v1/chat", url(front_port));
    let warmup = load::run(&chat_url, cli.connections, Duration::from_secs(cli.warmup)).await;
    let cpu_before: Vec<Duration> = services.iter().map(|s| s.cpu(ticks)).collect();
    let bench_before = procs::own_cpu(ticks);
    let outcome = load::run(
        &chat_url,
        cli.connections,
        Duration::from_secs(cli.duration),
    )
    .await;
    let cpu_after: Vec<Duration> = services.iter().map(|s| s.cpu(ticks)).collect();
    let bench_used = procs::own_cpu(ticks).saturating_sub(bench_before);
    let rss_after_mb = services_map(&services, |s| mb(s.rss()));
    for service in services {
        service.stop();
    }

    let requests = (outcome.ok + outcome.failed).max(1);
    let sent = requests + warmup.ok + warmup.failed;
    let mut cpu_us = [0.0; 3];
    for i in 0..3 {
        let used = cpu_after[i].saturating_sub(cpu_before[i]);
        cpu_us[i] = used.as_secs_f64() * 1e6 / requests as f64;
    }
    Ok(Sample {
        rps: outcome.ok as f64 / outcome.elapsed.as_secs_f64(),
        p50_ms: outcome.latency.value_at_quantile(0.50) as f64 / 1e3,
        p99_ms: outcome.latency.value_at_quantile(0.99) as f64 / 1e3,
        failed: outcome.failed,
        cpu_us,
        rss_before_mb,
        rss_after_mb,
        ready_ms,
        spans_per_request: sink.map_or(0.0, |s| s.span_count() as f64 / sent as f64),
        bench_cpu_us: bench_used.as_secs_f64() * 1e6 / requests as f64,
    })
}

fn log_path(cli: &Cli, setup: Setup, service: &str) -> Option<PathBuf> {
    cli.logs
        .as_ref()
        .map(|dir| dir.join(format!("{}-{service}.log", setup.slug())))
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn services_map(services: &[Service], f: impl Fn(&Service) -> f64) -> [f64; 3] {
    [f(&services[0]), f(&services[1]), f(&services[2])]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn print_table(cli: &Cli, setups: &[Setup], samples: &[Vec<Sample>]) {
    let m = |i: usize, f: &dyn Fn(&Sample) -> f64| median(samples[i].iter().map(f).collect());
    println!(
        "loadbench: {} connections, {} s warm-up, {} s measured, {} round(s), medians; CPU is user+system per request; RSS in MB before -> after load; bench is this process (load, LLM stub, receiver)",
        cli.connections, cli.warmup, cli.duration, cli.rounds
    );
    println!();
    println!(
        "| configuration | req/s | p50 ms | p99 ms | failed | chatbot µs/req | fraud µs/req | recommendation µs/req | sum µs/req | RSS chatbot / fraud / reco MB | ready ms | spans received per request | bench µs/req |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (i, setup) in setups.iter().enumerate() {
        let cpu = |k: usize| m(i, &|s| s.cpu_us[k]);
        let rss = |k: usize| {
            format!(
                "{:.1} -> {:.1}",
                m(i, &|s| s.rss_before_mb[k]),
                m(i, &|s| s.rss_after_mb[k])
            )
        };
        let ready = |k: usize| m(i, &|s| s.ready_ms[k]);
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} / {} / {} | {:.0} / {:.0} / {:.0} | {:.1} | {:.0} |",
            setup.name(),
            m(i, &|s| s.rps),
            m(i, &|s| s.p50_ms),
            m(i, &|s| s.p99_ms),
            m(i, &|s| s.failed as f64),
            cpu(0),
            cpu(1),
            cpu(2),
            cpu(0) + cpu(1) + cpu(2),
            rss(0),
            rss(1),
            rss(2),
            ready(0),
            ready(1),
            ready(2),
            m(i, &|s| s.spans_per_request),
            m(i, &|s| s.bench_cpu_us),
        );
    }
    let find = |setup: Setup| setups.iter().position(|s| *s == setup);
    let rps = |i: usize| m(i, &|s| s.rps);
    let cpu_sum = |i: usize| m(i, &|s| s.cpu_us.iter().sum());
    println!();
    if let (Some(t), Some(u)) = (find(Setup::Traced), find(Setup::Untraced)) {
        println!(
            "traced / untraced throughput: {:.2} (goal >= 0.90); tracing adds {:.0} µs CPU per request over the three services (goal <= 120)",
            rps(t) / rps(u),
            cpu_sum(t) - cpu_sum(u)
        );
    }
    if let (Some(u), Some(b)) = (find(Setup::Untraced), find(Setup::Bare)) {
        println!(
            "untraced / bare throughput: {:.2} (goal >= 0.80)",
            rps(u) / rps(b)
        );
    }
    if let Some(t) = find(Setup::Traced) {
        for setup in [
            Setup::CollectorDown,
            Setup::CollectorUnavailable,
            Setup::CollectorStuck,
        ] {
            if let Some(i) = find(setup) {
                println!(
                    "{}: p99 {:.2}x healthy (goal <= 1.05), {:.0} failed",
                    setup.name(),
                    m(i, &|s| s.p99_ms) / m(t, &|s| s.p99_ms),
                    m(i, &|s| s.failed as f64)
                );
            }
        }
    }
}
