//! Starting the real service binaries as processes, for the process and compose tests.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The path of a workspace binary, next to this test's own directory.
pub fn bin(name: &str) -> PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/<name>
    let exe = std::env::current_exe().expect("test path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests",
        path.display()
    );
    path
}

/// Kills the processes on drop so a failed assertion leaves nothing running.
pub struct Processes(pub Vec<(String, Child)>);

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `name` with exactly `envs` (plus PATH).
pub fn spawn(name: &str, envs: &[(String, String)]) -> Child {
    Command::new(bin(name))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"))
}

/// Polls `url` until it answers 2xx.
pub async fn wait_ready(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never became ready");
}

/// SIGTERM, then wait: the services drain and flush on SIGTERM, as under `docker stop`.
pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "process ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub const SAMSUNG_QUESTION: &str = "What is the price of Samsung 65 QLED?";
pub const SAMSUNG_ANSWER: &str =
    "The Samsung 65 QLED is priced at Rs 85000 and is available at the Mumbai warehouse.";

/// Asks the seed question at `chatbot` (host:port); checks the seed answer; returns the trace id.
pub async fn ask_seed_question(client: &reqwest::Client, chatbot: &str, customer: &str) -> String {
    let response = client
        .post(format!("http://{chatbot}/v1/chat"))
        .json(&serde_json::json!({ "question": SAMSUNG_QUESTION, "customer_id": customer }))
        .send()
        .await
        .expect("chatbot reachable");
    assert_eq!(response.status(), 200);
    let reply: serde_json::Value = response.json().await.expect("json");
    assert_eq!(reply["answer"], SAMSUNG_ANSWER);
    reply["trace_id"].as_str().expect("trace id").to_owned()
}

/// SIGTERMs every process, last started first, and checks each exits cleanly: `docker stop` and
/// Kubernetes do the same, and the services flush their final batches on the way out.
pub fn terminate_all(procs: &mut Processes) {
    for (name, child) in procs.0.iter_mut().rev() {
        let status = terminate(child);
        assert!(status.success(), "{name} exited with {status}");
    }
}
