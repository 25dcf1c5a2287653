//! Child processes under test, their readiness, and what `/proc` says they used.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One service process.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) name: &'static str,
    pub(crate) port: u16,
    child: Child,
    spawned: Instant,
}

impl Service {
    /// Starts `program` with `args` and `env` (on top of a clean environment: the bench's own
    /// `OTEL_*` or `RUST_LOG` must not leak into the measurement).
    pub(crate) fn start(
        name: &'static str,
        port: u16,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        log: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path)?),
            None => Stdio::null(),
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(std::env::var("PATH").map(|p| ("PATH".to_owned(), p)))
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = command
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", program.display()))?;
        Ok(Self {
            name,
            port,
            child,
            spawned: Instant::now(),
        })
    }

    /// Process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `GET /readyz` answers 200; returns how long after the start that was.
    pub(crate) async fn ready(&mut self, client: &reqwest::Client) -> anyhow::Result<Duration> {
        let started = self.spawned;
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        while started.elapsed() < Duration::from_secs(60) {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("{} exited at start-up: {status}", self.name);
            }
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        anyhow::bail!("{} not ready after 60 s", self.name)
    }

    /// CPU time used so far (user + system).
    pub(crate) fn cpu(&self, ticks_per_sec: u64) -> Duration {
        cpu_time(self.pid(), ticks_per_sec).unwrap_or_default()
    }

    /// Resident memory now, in bytes.
    pub(crate) fn rss(&self) -> u64 {
        rss_bytes(self.pid()).unwrap_or(0)
    }

    /// SIGTERM, then a kill if it does not stop within two seconds.
    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    /// A run that fails half-way (a service not ready, a bind error) must not leave processes
    /// behind: whatever `stop` did not already end is killed here.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// utime + stime of `pid`, from `/proc/<pid>/stat` (fields 14 and 15, counted after the command
/// name, which may itself hold spaces).
fn cpu_time(pid: u32, ticks_per_sec: u64) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_micros(
        (utime + stime) * 1_000_000 / ticks_per_sec.max(1),
    ))
}

/// CPU time this process has used so far (user + system).
pub(crate) fn own_cpu(ticks_per_sec: u64) -> Duration {
    cpu_time(std::process::id(), ticks_per_sec).unwrap_or_default()
}

/// `VmRSS` of `pid`, in bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux we run on).
pub(crate) fn ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// A free port on 127.0.0.1 (bound, read, released).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
