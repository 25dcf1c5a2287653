//! The load: a fixed number of connections, each sending the seed question back to back with a
//! varying customer id (so fraud's velocity rule sees ordinary traffic), latencies into an HDR
//! histogram.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// What one run of load measured.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) elapsed: Duration,
    /// Latencies of successful requests, in microseconds.
    pub(crate) latency: Histogram<u64>,
}

/// Sends questions to `url` on `connections` connections for `duration`.
pub(crate) async fn run(url: &str, connections: usize, duration: Duration) -> Outcome {
    let next_customer = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        // One client per connection: each keeps its own keep-alive connection, as wrk does.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap_or_default();
        let url = url.to_owned();
        let next_customer = next_customer.clone();
        tasks.push(tokio::spawn(async move {
            let mut latency = new_histogram();
            let (mut ok, mut failed) = (0u64, 0u64);
            while Instant::now() < deadline {
                let n = next_customer.fetch_add(1, Ordering::Relaxed) % 1_000_000;
                let body = format!(
                    r#"{{"question":"What is the price of Samsung 65 QLED?","customer_id":"bench-{n}"}}"#
                );
                let sent = Instant::now();
                let result = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let good = match result {
                    Ok(response) => {
                        let status = response.status();
                        response.bytes().await.is_ok() && status.is_success()
                    }
                    Err(_) => false,
                };
                if good {
                    ok += 1;
                    let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let _ = latency.record(micros.max(1));
                } else {
                    failed += 1;
                }
            }
            (ok, failed, latency)
        }));
    }
    let mut outcome = Outcome {
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latency: new_histogram(),
    };
    for task in tasks {
        if let Ok((ok, failed, latency)) = task.await {
            outcome.ok += ok;
            outcome.failed += failed;
            let _ = outcome.latency.add(&latency);
        }
    }
    outcome.elapsed = started.elapsed();
    outcome
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).expect("histogram"))
}
