//! `shopmax up`: the mock LLM, fraud, recommendation and the chatbot as child processes (each its
//! own process, as in production), their output prefixed and coloured per service, and an OTLP
//! receiver in this process that keeps the most recent traces for `ask` and `trace`.
//!
//! Telemetry goes to the built-in receiver unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set, in which
//! case the services export there (a Collector, Jaeger) and no receiver is started: the user who
//! set it wants their backend, and two receivers on one port cannot both listen.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::store::{Limits, TraceStore};
use crate::waterfall::service_style;

/// The gateway secret `up` gives the chatbot and `load` sends, so the load generator is
/// trusted like a gateway (its customers are counted by id, not all by 127.0.0.1). Local use
/// only: set `SHOPMAX_GATEWAY_TOKEN` to use another.
pub const DEV_GATEWAY_TOKEN: &str = "shopmax-local-development-gateway";

/// Ports of one `up`.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// The chatbot.
    pub chatbot: u16,
    /// Recommendation.
    pub recommendation: u16,
    /// Fraud.
    pub fraud: u16,
    /// The mock LLM.
    pub llm: u16,
    /// OTLP/gRPC of the built-in receiver.
    pub otlp_grpc: u16,
    /// OTLP/HTTP and the query API of the built-in receiver.
    pub otlp_http: u16,
}

impl Ports {
    /// The usual ports, each plus `offset`.
    pub fn with_offset(offset: u16) -> anyhow::Result<Self> {
        let add = |p: u16| {
            p.checked_add(offset)
                .with_context(|| format!("--port-offset {offset} takes port {p} past 65535"))
        };
        Ok(Self {
            chatbot: add(8080)?,
            recommendation: add(8081)?,
            fraud: add(8082)?,
            llm: add(8090)?,
            otlp_grpc: add(4317)?,
            otlp_http: add(4318)?,
        })
    }
}

/// What `up` was asked to do.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Ports.
    pub ports: Ports,
    /// Where the service binaries are.
    pub bin_dir: PathBuf,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` when the user set one (no built-in receiver then).
    pub external_endpoint: Option<String>,
    /// The chatbot's gateway secret.
    pub gateway_token: String,
    /// Serve `POST /admin/faults` (fraud, recommendation, the mock LLM).
    pub fault_admin: bool,
}

/// A service to start: its name, its own variables, its port.
type Planned = (&'static str, Vec<(&'static str, String)>, u16);

/// A started child.
struct Service {
    name: &'static str,
    child: Child,
}

/// Why `up` could not start.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    /// A binary is missing.
    #[error("{0} is not built; run: cargo build --release --bins (then target/release/shopmax up)")]
    NotBuilt(String),
    /// A port is taken.
    #[error(
        "port {port} ({what}) is in use: another `shopmax up`, `docker compose up` or run-local.sh? Stop it, or pass --port-offset N"
    )]
    PortInUse {
        /// The port.
        port: u16,
        /// Whose port.
        what: &'static str,
    },
    /// A service did not become ready.
    #[error("{name} did not become ready at {url} within {secs} s; see its output above")]
    NotReady {
        /// The service.
        name: &'static str,
        /// Its readiness URL.
        url: String,
        /// How long we waited.
        secs: u64,
    },
    /// A service exited during start-up.
    #[error("{name} exited during start-up ({status}); see its output above")]
    Exited {
        /// The service.
        name: &'static str,
        /// How it exited.
        status: String,
    },
}

/// The directory of the running executable, where cargo puts the other binaries too.
pub fn default_bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default()
}

async fn bind(port: u16, what: &'static str) -> Result<TcpListener, UpError> {
    TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|_| UpError::PortInUse { port, what })
}

/// Checks that a port is free now (the child binds it a moment later).
async fn check_free(port: u16, what: &'static str) -> Result<(), UpError> {
    drop(bind(port, what).await?);
    Ok(())
}

/// Runs until Ctrl-C or SIGTERM (or a service dies), then stops the services in reverse order,
/// each flushing its telemetry, and the receiver last.
pub async fn up(options: UpOptions) -> anyhow::Result<()> {
    let ports = options.ports;
    for name in ["mock-llm", "fraud", "recommendation", "chatbot"] {
        if !options.bin_dir.join(name).is_file() {
            return Err(UpError::NotBuilt(options.bin_dir.join(name).display().to_string()).into());
        }
    }
    for (port, what) in [
        (ports.chatbot, "chatbot"),
        (ports.recommendation, "recommendation"),
        (ports.fraud, "fraud"),
        (ports.llm, "mock LLM"),
    ] {
        check_free(port, what).await?;
    }

    let (endpoint, store) = match &options.external_endpoint {
        Some(endpoint) => (endpoint.clone(), None),
        None => {
            let grpc = bind(ports.otlp_grpc, "OTLP/gRPC receiver").await?;
            let http = bind(ports.otlp_http, "OTLP/HTTP receiver").await?;
            let store = TraceStore::new(Limits::default());
            let observer_store = store.clone();
            let sink = otlp_sink::OtlpSink::serve_with_options(
                grpc,
                http,
                otlp_sink::SinkOptions {
                    observer: Some(Arc::new(move |request| observer_store.add(request))),
                    routes: Some(store.routes()),
                    ..otlp_sink::SinkOptions::default()
                },
            )
            .await
            .context("starting the built-in OTLP receiver")?;
            // The store keeps the traces; the sink itself keeps nothing.
            sink.set_count_only(true);
            (
                format!("http://127.0.0.1:{}", ports.otlp_grpc),
                Some((sink, store)),
            )
        }
    };

    let url = |port: u16| format!("http://127.0.0.1:{port}");
    let telemetry = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
        // Spans reach the waterfall within a fraction of a second, not the default 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
        ("OTEL_BLRP_SCHEDULE_DELAY", "200".to_owned()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            std::env::var("OTEL_RESOURCE_ATTRIBUTES")
                .unwrap_or_else(|_| "deployment.environment.name=local".to_owned()),
        ),
        // Our services get baggage; the LLM plays an external provider.
        (
            "TELEMETRY_INTERNAL_HOSTS",
            format!(
                "127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}",
                ports.chatbot, ports.recommendation, ports.fraud
            ),
        ),
        (
            "RUST_LOG",
            std::env::var("RUST_LOG")
                .unwrap_or_else(|_| "info,opentelemetry_sdk=off,opentelemetry_otlp=off".to_owned()),
        ),
    ];
    let llm_url =
        std::env::var("LLM_BASE_URL").unwrap_or_else(|_| format!("{}/v1", url(ports.llm)));
    let plan: [Planned; 4] = [
        (
            "mock-llm",
            vec![("MOCK_LLM_PORT", ports.llm.to_string())],
            ports.llm,
        ),
        (
            "fraud",
            vec![
                ("PORT", ports.fraud.to_string()),
                ("FAULT_ADMIN", options.fault_admin.to_string()),
            ],
            ports.fraud,
        ),
        (
            "recommendation",
            vec![
                ("PORT", ports.recommendation.to_string()),
                ("FAULT_ADMIN", options.fault_admin.to_string()),
                ("LLM_BASE_URL", llm_url.clone()),
            ],
            ports.recommendation,
        ),
        (
            "chatbot",
            vec![
                ("PORT", ports.chatbot.to_string()),
                ("FRAUD_URL", url(ports.fraud)),
                ("RECOMMENDATION_URL", url(ports.recommendation)),
                ("LLM_BASE_URL", llm_url),
                ("CHATBOT_GATEWAY_TOKEN", options.gateway_token.clone()),
                // The chat page's spans go where the services' go; with the built-in receiver
                // there is no trace UI to link to (the page shows the id for `shopmax trace`).
                (
                    "CHATBOT_BROWSER_TRACES_URL",
                    std::env::var("CHATBOT_BROWSER_TRACES_URL").unwrap_or_else(|_| {
                        format!("http://127.0.0.1:{}/v1/traces", ports.otlp_http)
                    }),
                ),
                (
                    "CHATBOT_TRACE_UI_URL",
                    std::env::var("CHATBOT_TRACE_UI_URL").unwrap_or_else(|_| "none".to_owned()),
                ),
            ],
            ports.chatbot,
        ),
    ];

    let client = reqwest::Client::new();
    let mut services: Vec<Service> = Vec::new();
    let started = Instant::now();
    // A signal during start-up stops what has started, instead of leaving it running.
    let mut signals = Signals::new();
    let result = async {
        for (name, env, port) in plan {
            let mut command = Command::new(options.bin_dir.join(name));
            command
                .envs(telemetry.iter().map(|(k, v)| (*k, v.as_str())))
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            // Its own process group: a terminal's Ctrl-C reaches `up` alone, which then stops
            // the services in order (the chatbot first, the mock LLM last), each flushing.
            #[cfg(unix)]
            command.process_group(0);
            let mut child = command
                .spawn()
                .with_context(|| format!("starting {name}"))?;
            prefix(name, child.stdout.take());
            prefix(name, child.stderr.take());
            services.push(Service { name, child });
            // Recommendation embeds the catalog at start-up and needs the mock LLM first.
            if name == "mock-llm" {
                ready(&client, &mut services, name, port).await?;
            }
        }
        for (name, port) in [
            ("fraud", ports.fraud),
            ("recommendation", ports.recommendation),
            ("chatbot", ports.chatbot),
        ] {
            ready(&client, &mut services, name, port).await?;
        }
        anyhow::Ok(())
    };
    let result = tokio::select! {
        result = result => result,
        () = signals.recv() => Err(anyhow::anyhow!("interrupted during start-up")),
    };
    if let Err(error) = result {
        stop(&mut services).await;
        return Err(error);
    }

    let took = started.elapsed();
    let telemetry_line = match &store {
        Some(_) => format!(
            "traces: built-in receiver, OTLP on 127.0.0.1:{} (gRPC) and :{} (HTTP); `shopmax ask` and `shopmax trace` read it",
            ports.otlp_grpc, ports.otlp_http
        ),
        None => format!(
            "traces: exported to {endpoint} (OTEL_EXPORTER_OTLP_ENDPOINT); read them there, e.g. `shopmax trace ID --jaeger http://localhost:16686`"
        ),
    };
    let chatbot_hint = if ports.chatbot == 8080 {
        String::new()
    } else {
        format!(" --chatbot {}", url(ports.chatbot))
    };
    let offset_hint = match &store {
        Some(_) if ports.otlp_http != 4318 => {
            format!("{chatbot_hint} --receiver {}", url(ports.otlp_http))
        }
        Some(_) => chatbot_hint.clone(),
        // No built-in receiver: the trace went to the user's backend.
        None => format!("{chatbot_hint} --no-trace"),
    };
    anstream::eprintln!(
        "\nShopMax is up in {:.1} s: chatbot {}, recommendation :{}, fraud :{}, mock LLM :{}.\n{telemetry_line}\nThe chat page: {}/ (each answer shows its trace id for `shopmax trace`).\n\n  shopmax ask \"What is the price of Samsung 65 QLED?\"{offset_hint}\n  shopmax ask \"Does OnePlus 11 support 5G?\" --stream{offset_hint}\n  shopmax load --rps 5 --duration 30s{chatbot_hint}\n\nCtrl-C stops everything.\n",
        took.as_secs_f64(),
        url(ports.chatbot),
        ports.recommendation,
        ports.fraud,
        ports.llm,
        url(ports.chatbot),
    );

    let exited = wait_for_stop(&mut services, &mut signals).await;
    if let Some(message) = &exited {
        anstream::eprintln!("{message}");
    }
    stop(&mut services).await;
    if let Some((_, store)) = &store {
        let (traces, spans) = store.len();
        anstream::eprintln!(
            "stopped; the built-in receiver held {} ({})",
            crate::waterfall::count(traces, "trace"),
            crate::waterfall::count(spans, "span")
        );
    }
    match exited {
        Some(_) => anyhow::bail!("a service exited; everything is stopped"),
        None => Ok(()),
    }
}

/// Copies a child's output to ours, each line prefixed with its service name in its colour.
fn prefix(name: &'static str, stream: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>) {
    let Some(stream) = stream else { return };
    tokio::spawn(async move {
        let style = service_style(name);
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            anstream::eprintln!("{style}{name:>14} |{style:#} {line}");
        }
    });
}

/// Waits for `GET /readyz` of a service to answer 200, or for it to exit.
async fn ready(
    client: &reqwest::Client,
    services: &mut [Service],
    name: &'static str,
    port: u16,
) -> Result<(), UpError> {
    let url = format!("http://127.0.0.1:{port}/readyz");
    let patience = Duration::from_secs(60);
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Some(service) = services.iter_mut().find(|s| s.name == name)
            && let Ok(Some(status)) = service.child.try_wait()
        {
            return Err(UpError::Exited {
                name,
                status: status.to_string(),
            });
        }
        if let Ok(response) = client
            .get(&url)
            .timeout(Duration::from_secs(1))
            .send()
            .await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(UpError::NotReady {
        name,
        url,
        secs: patience.as_secs(),
    })
}

/// Ctrl-C and SIGTERM, listened for from the start.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        Self {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    /// Resolves at the next Ctrl-C or SIGTERM.
    async fn recv(&mut self) {
        #[cfg(unix)]
        let terminated = async {
            match self.term.as_mut() {
                Some(term) => {
                    term.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminated = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminated => {}
        }
    }
}

/// Waits for Ctrl-C, SIGTERM or a service exiting; the last says which.
async fn wait_for_stop(services: &mut [Service], signals: &mut Signals) -> Option<String> {
    let any_exit = async {
        loop {
            for service in services.iter_mut() {
                if let Ok(Some(status)) = service.child.try_wait() {
                    return format!("{} exited ({status}); stopping the others", service.name);
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::select! {
        () = signals.recv() => None,
        message = any_exit => Some(message),
    }
}

/// Stops the services, the chatbot first: SIGTERM, then up to 10 s each to flush and exit.
async fn stop(services: &mut Vec<Service>) {
    while let Some(mut service) = services.pop() {
        if let Ok(Some(_)) = service.child.try_wait() {
            continue;
        }
        terminate(&service.child);
        if tokio::time::timeout(Duration::from_secs(10), service.child.wait())
            .await
            .is_err()
        {
            anstream::eprintln!("{} did not stop within 10 s; killing it", service.name);
            let _ = service.child.kill().await;
        }
    }
}

#[cfg(unix)]
fn terminate(child: &Child) {
    // SIGTERM lets the service drain and flush; SIGKILL would lose its last spans.
    if let Some(pid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

#[cfg(not(unix))]
fn terminate(_child: &Child) {}
