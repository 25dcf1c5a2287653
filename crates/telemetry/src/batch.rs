//! A batching span processor with a bounded queue that counts what it drops.
//!
//! The SDK's `BatchSpanProcessor` also drops spans when its queue is full, but it only says so in
//! an internal log and exposes no count. We need the count, as a metric and a log line, because a
//! silently lossy trace pipeline is the failure our users cannot see. The request path does one
//! `try_send` into a bounded channel and never waits; a dedicated thread batches and exports, so a
//! slow or dead collector costs requests nothing and memory stays at `max_queue_size` spans.
//!
//! The export thread never waits on the span queue itself, only on a control channel: waking it
//! for every span cost a context switch per span, which `loadbench` measured as most of the
//! tracing overhead (13 context switches per request instead of 3). The request path wakes it once
//! per full batch (`BatchReady`, guarded by a flag so a burst sends one message); otherwise it
//! wakes when `schedule_delay` elapses, as the SDK's own processors do.
//!
//! The worker runs the exporter future with `futures_executor::block_on` on its own thread. The
//! OTLP/gRPC exporter needs its tonic channel created inside a Tokio runtime (that runtime then
//! drives the connection), which [`crate::init`] guarantees; the HTTP exporter uses the blocking
//! reqwest client, which is made for exactly this kind of thread.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded, unbounded};
use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use crate::config::BatchConfig;

/// How often at most a "spans dropped" or "export failed" warning is logged.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Counters of the span pipeline, shared with the self-observability metrics.
#[derive(Debug, Default)]
pub struct SpanPipelineStats {
    /// Spans accepted into the queue.
    pub enqueued: AtomicU64,
    /// Spans refused because the queue was full (or the processor shut down).
    pub dropped: AtomicU64,
    /// Spans the exporter accepted.
    pub exported: AtomicU64,
    /// Spans in batches the exporter failed to deliver.
    pub export_failed: AtomicU64,
    /// The queue itself, so its length and capacity are read, not tracked alongside.
    queue: OnceLock<Receiver<SpanData>>,
}

impl SpanPipelineStats {
    /// Spans waiting in the queue right now.
    pub fn queued(&self) -> usize {
        self.queue.get().map_or(0, Receiver::len)
    }

    /// Queue capacity.
    pub fn capacity(&self) -> usize {
        self.queue.get().and_then(Receiver::capacity).unwrap_or(0)
    }
}

enum Control {
    /// The queue holds at least one full batch.
    BatchReady,
    Flush(Sender<OTelSdkResult>),
    Shutdown(Sender<OTelSdkResult>),
    SetResource(Resource),
}

/// Bounded, counting replacement for the SDK's batch span processor.
pub(crate) struct BoundedBatchSpanProcessor {
    spans: Sender<SpanData>,
    control: Sender<Control>,
    /// Set while a `BatchReady` is on its way, so a burst of spans sends one message.
    batch_ready_sent: Arc<AtomicBool>,
    batch_size: usize,
    /// How long `force_flush` waits (`OTEL_BSP_EXPORT_TIMEOUT`).
    flush_timeout: Duration,
    stats: Arc<SpanPipelineStats>,
    worker: Mutex<Option<JoinHandle<()>>>,
    stop_reporter: Sender<()>,
    shut_down: AtomicBool,
}

impl fmt::Debug for BoundedBatchSpanProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedBatchSpanProcessor")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl BoundedBatchSpanProcessor {
    /// Starts the export thread for `exporter`.
    pub(crate) fn new<E>(
        exporter: E,
        mut config: BatchConfig,
        stats: Arc<SpanPipelineStats>,
    ) -> Self
    where
        E: SpanExporter + 'static,
    {
        config.max_export_batch_size = config.max_export_batch_size.max(1);
        let capacity = config.max_queue_size.max(1);
        let (spans_tx, spans_rx) = bounded(capacity);
        let _ = stats.queue.set(spans_rx.clone());
        let (control_tx, control_rx) = unbounded();
        let batch_ready_sent = Arc::new(AtomicBool::new(false));
        let worker_stats = stats.clone();
        let worker_ready = batch_ready_sent.clone();
        let worker = std::thread::Builder::new()
            .name("otel-span-export".into())
            .spawn(move || {
                Worker {
                    exporter,
                    config,
                    stats: worker_stats,
                    batch_ready_sent: worker_ready,
                    batch: Vec::new(),
                }
                .run(spans_rx, control_rx)
            })
            .ok();
        if worker.is_none() {
            tracing::error!(target: "telemetry", "telemetry.exporter.thread_failed");
        }
        let (stop_tx, stop_rx) = bounded(1);
        let reporter = Reporter {
            stats: stats.clone(),
            capacity,
            reported_dropped: 0,
            reported_failed: 0,
            last_report: None,
        };
        let _ = std::thread::Builder::new()
            .name("otel-span-report".into())
            .spawn(move || reporter.run(stop_rx));
        Self {
            spans: spans_tx,
            control: control_tx,
            batch_ready_sent,
            batch_size: config.max_export_batch_size,
            flush_timeout: config.export_timeout,
            stats,
            worker: Mutex::new(worker),
            stop_reporter: stop_tx,
            shut_down: AtomicBool::new(false),
        }
    }

    fn call(
        &self,
        make: impl FnOnce(Sender<OTelSdkResult>) -> Control,
        timeout: Duration,
    ) -> OTelSdkResult {
        let (tx, rx) = bounded(1);
        self.control
            .send(make(tx))
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        rx.recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))?
    }
}

impl SpanProcessor for BoundedBatchSpanProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.shut_down.load(Ordering::Acquire) {
            // Nothing will export it any more: a drop, not an enqueue.
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.spans.try_send(span) {
            Ok(()) => {
                self.stats.enqueued.fetch_add(1, Ordering::Relaxed);
                // The load first: most spans find the flag set or the batch short, and a
                // plain read does not contend with the other threads ending spans.
                if self.spans.len() >= self.batch_size
                    && !self.batch_ready_sent.load(Ordering::Relaxed)
                    && !self.batch_ready_sent.swap(true, Ordering::AcqRel)
                {
                    let _ = self.control.send(Control::BatchReady);
                }
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        self.call(Control::Flush, self.flush_timeout)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let result = self.call(Control::Shutdown, timeout);
        let _ = self.stop_reporter.try_send(());
        if result.is_ok()
            && let Some(handle) = self.worker.lock().ok().and_then(|mut w| w.take())
        {
            let _ = handle.join();
            // A span that ended while shutdown was draining may have slipped in behind the last
            // batch; with the worker gone nothing exports it, so it counts as dropped.
            if let Some(queue) = self.stats.queue.get() {
                let left = queue.try_iter().count() as u64;
                self.stats.dropped.fetch_add(left, Ordering::Relaxed);
            }
        }
        result
    }

    fn set_resource(&mut self, resource: &Resource) {
        let _ = self.control.send(Control::SetResource(resource.clone()));
    }
}

struct Worker<E> {
    exporter: E,
    config: BatchConfig,
    stats: Arc<SpanPipelineStats>,
    batch_ready_sent: Arc<AtomicBool>,
    batch: Vec<SpanData>,
}

impl<E: SpanExporter> Worker<E> {
    fn run(mut self, spans: Receiver<SpanData>, control: Receiver<Control>) {
        let mut deadline = Instant::now() + self.config.schedule_delay;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match control.recv_timeout(wait) {
                Ok(Control::BatchReady) => {
                    // Cleared before reading the queue: spans that arrive during the export
                    // send the next message themselves.
                    self.batch_ready_sent.store(false, Ordering::Release);
                    // The full batches queued now, not more: under load the queue refills as
                    // fast as it drains, and a flush or shutdown waits behind this message.
                    for _ in 0..spans.len() / self.config.max_export_batch_size {
                        let _ = self.export_batch(&spans);
                    }
                    deadline = Instant::now() + self.config.schedule_delay;
                }
                Ok(Control::Flush(reply)) => {
                    let result = self.drain(&spans);
                    let _ = reply.send(result);
                }
                Ok(Control::Shutdown(reply)) => {
                    let result = self.drain(&spans);
                    let shutdown = self.exporter.shutdown();
                    let _ = reply.send(result.and(shutdown));
                    return;
                }
                Ok(Control::SetResource(resource)) => self.exporter.set_resource(&resource),
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.drain(&spans);
                    deadline = Instant::now() + self.config.schedule_delay;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    /// Exports up to one batch from the queue.
    fn export_batch(&mut self, spans: &Receiver<SpanData>) -> OTelSdkResult {
        self.batch
            .extend(spans.try_iter().take(self.config.max_export_batch_size));
        if self.batch.is_empty() {
            Ok(())
        } else {
            self.export()
        }
    }

    /// Exports everything queued so far, in batches.
    fn drain(&mut self, spans: &Receiver<SpanData>) -> OTelSdkResult {
        let mut result = Ok(());
        // Bounded by what is queued now, so spans that keep arriving cannot hold a flush forever.
        for _ in 0..spans.len().div_ceil(self.config.max_export_batch_size) {
            result = result.and(self.export_batch(spans));
        }
        result
    }

    fn export(&mut self) -> OTelSdkResult {
        let batch = std::mem::take(&mut self.batch);
        let n = batch.len() as u64;
        let result = futures_executor::block_on(self.exporter.export(batch));
        match &result {
            Ok(()) => self.stats.exported.fetch_add(n, Ordering::Relaxed),
            Err(_) => self.stats.export_failed.fetch_add(n, Ordering::Relaxed),
        };
        result
    }
}

/// Logs drops and export failures from its own thread, so a report is never stuck behind an
/// export that waits on a dead collector, and never runs on the request path.
#[derive(Debug)]
struct Reporter {
    stats: Arc<SpanPipelineStats>,
    capacity: usize,
    reported_dropped: u64,
    reported_failed: u64,
    last_report: Option<Instant>,
}

impl Reporter {
    fn run(mut self, stop: Receiver<()>) {
        // Checking every second keeps the first report prompt; REPORT_EVERY rate-limits the rest.
        while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
            stop.recv_timeout(Duration::from_secs(1))
        {
            self.report(false);
        }
        self.report(true);
    }

    fn report(&mut self, force: bool) {
        let due = force || self.last_report.is_none_or(|t| t.elapsed() >= REPORT_EVERY);
        if !due {
            return;
        }
        let dropped = self.stats.dropped.load(Ordering::Relaxed);
        let failed = self.stats.export_failed.load(Ordering::Relaxed);
        if dropped > self.reported_dropped {
            tracing::warn!(
                target: "telemetry",
                dropped_total = dropped,
                dropped_since_last_report = dropped - self.reported_dropped,
                queue_capacity = self.capacity,
                "telemetry.spans.dropped"
            );
        }
        if failed > self.reported_failed {
            tracing::warn!(
                target: "telemetry",
                failed_total = failed,
                failed_since_last_report = failed - self.reported_failed,
                "telemetry.spans.export_failed"
            );
        }
        if dropped > self.reported_dropped || failed > self.reported_failed {
            self.last_report = Some(Instant::now());
        }
        self.reported_dropped = dropped;
        self.reported_failed = failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use std::sync::atomic::AtomicUsize;

    /// Long enough for a loaded CI machine; the test passes as soon as the export happens.
    const WAIT: Duration = Duration::from_secs(10);

    /// An exporter that blocks until released, to fill the queue deterministically.
    #[derive(Debug, Clone)]
    struct GateExporter {
        open: Arc<AtomicBool>,
        exported: Arc<AtomicUsize>,
    }

    impl SpanExporter for GateExporter {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            while !self.open.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(2));
            }
            self.exported.fetch_add(batch.len(), Ordering::SeqCst);
            Ok(())
        }
    }

    fn config(queue: usize, batch: usize) -> BatchConfig {
        BatchConfig {
            schedule_delay: Duration::from_millis(20),
            export_timeout: Duration::from_secs(5),
            max_queue_size: queue,
            max_export_batch_size: batch,
        }
    }

    #[test]
    fn full_queue_drops_and_counts_instead_of_blocking() {
        let exporter = GateExporter {
            open: Arc::new(AtomicBool::new(false)),
            exported: Arc::new(AtomicUsize::new(0)),
        };
        let stats = Arc::new(SpanPipelineStats::default());
        let processor =
            BoundedBatchSpanProcessor::new(exporter.clone(), config(8, 1), stats.clone());
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("test");

        // The worker takes one span and blocks in export; 8 more fill the queue; the rest drop.
        for _ in 0..100 {
            tracer.in_span("s", |_| {});
        }
        let dropped = stats.dropped.load(Ordering::SeqCst);
        let enqueued = stats.enqueued.load(Ordering::SeqCst);
        assert_eq!(dropped + enqueued, 100);
        assert!(enqueued <= 9 + 1, "enqueued {enqueued}");
        assert!(dropped >= 90, "dropped {dropped}");

        exporter.open.store(true, Ordering::SeqCst);
        provider.force_flush().expect("flush");
        assert_eq!(exporter.exported.load(Ordering::SeqCst) as u64, enqueued);
        assert_eq!(stats.queued(), 0);
        provider.shutdown().expect("shutdown");
    }

    #[test]
    fn a_full_batch_is_exported_without_waiting_for_the_schedule_delay() {
        let exporter = GateExporter {
            open: Arc::new(AtomicBool::new(true)),
            exported: Arc::new(AtomicUsize::new(0)),
        };
        let mut config = config(64, 4);
        config.schedule_delay = Duration::from_secs(3600);
        let stats = Arc::new(SpanPipelineStats::default());
        let processor = BoundedBatchSpanProcessor::new(exporter.clone(), config, stats.clone());
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("test");
        for _ in 0..9 {
            tracer.in_span("s", |_| {});
        }
        let started = Instant::now();
        while exporter.exported.load(Ordering::SeqCst) < 8 && started.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Two full batches go at once; the ninth span waits for the delay (or a flush).
        assert_eq!(exporter.exported.load(Ordering::SeqCst), 8);
        assert_eq!(stats.queued(), 1);
        provider.force_flush().expect("flush");
        assert_eq!(exporter.exported.load(Ordering::SeqCst), 9);
        provider.shutdown().expect("shutdown");
    }

    #[test]
    fn a_span_ended_after_shutdown_counts_as_dropped() {
        let exporter = GateExporter {
            open: Arc::new(AtomicBool::new(true)),
            exported: Arc::new(AtomicUsize::new(0)),
        };
        let stats = Arc::new(SpanPipelineStats::default());
        let processor =
            BoundedBatchSpanProcessor::new(exporter.clone(), config(64, 4), stats.clone());
        tracer_span(&processor);
        processor.shutdown().expect("shutdown");
        tracer_span(&processor);
        assert_eq!(exporter.exported.load(Ordering::SeqCst), 1);
        assert_eq!(stats.enqueued.load(Ordering::SeqCst), 1);
        assert_eq!(stats.dropped.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn force_flush_gives_up_after_the_export_timeout() {
        let exporter = GateExporter {
            open: Arc::new(AtomicBool::new(false)),
            exported: Arc::new(AtomicUsize::new(0)),
        };
        let mut config = config(64, 4);
        config.export_timeout = Duration::from_millis(200);
        let stats = Arc::new(SpanPipelineStats::default());
        let processor = BoundedBatchSpanProcessor::new(exporter.clone(), config, stats);
        tracer_span(&processor);
        let started = Instant::now();
        let result = processor.force_flush();
        assert!(
            matches!(result, Err(OTelSdkError::Timeout(_))),
            "{result:?}"
        );
        assert!(
            started.elapsed() < WAIT,
            "flush waited {:?}",
            started.elapsed()
        );
        exporter.open.store(true, Ordering::SeqCst);
        assert!(processor.shutdown().is_ok());
    }

    /// Ends one sampled span straight into `processor`.
    fn tracer_span(processor: &BoundedBatchSpanProcessor) {
        let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        provider.tracer("test").in_span("s", |_| {});
        let _ = provider.force_flush();
        for span in exporter.get_finished_spans().expect("spans") {
            processor.on_end(span);
        }
    }

    /// An exporter that takes a while per batch, like a real collector under load.
    #[derive(Debug, Clone, Default)]
    struct SlowExporter {
        exported: Arc<AtomicUsize>,
    }

    impl SpanExporter for SlowExporter {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            std::thread::sleep(Duration::from_millis(5));
            self.exported.fetch_add(batch.len(), Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn flush_under_load_exports_what_was_queued_and_returns() {
        let exporter = SlowExporter::default();
        let stats = Arc::new(SpanPipelineStats::default());
        let processor = BoundedBatchSpanProcessor::new(exporter.clone(), config(256, 8), stats);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let stop = Arc::new(AtomicBool::new(false));
        let producer = {
            let (provider, stop) = (provider.clone(), stop.clone());
            std::thread::spawn(move || {
                let tracer = provider.tracer("load");
                while !stop.load(Ordering::SeqCst) {
                    tracer.in_span("s", |_| {});
                }
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        // The producer refills the queue faster than a batch exports: a flush that drained
        // until empty would never return.
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        let flusher = {
            let provider = provider.clone();
            std::thread::spawn(move || {
                let _ = done_tx.send(provider.force_flush());
            })
        };
        let flushed = done_rx.recv_timeout(WAIT);
        stop.store(true, Ordering::SeqCst);
        producer.join().expect("producer");
        flusher.join().expect("flusher");
        assert!(matches!(flushed, Ok(Ok(()))), "{flushed:?}");
        assert!(exporter.exported.load(Ordering::SeqCst) > 0);
        provider.shutdown().expect("shutdown");
    }

    #[derive(Debug)]
    struct FailingExporter;

    impl SpanExporter for FailingExporter {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            Err(OTelSdkError::InternalFailure("collector down".into()))
        }
    }

    #[test]
    fn export_failures_are_counted() {
        let stats = Arc::new(SpanPipelineStats::default());
        let processor =
            BoundedBatchSpanProcessor::new(FailingExporter, config(64, 16), stats.clone());
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("test");
        for _ in 0..20 {
            tracer.in_span("s", |_| {});
        }
        assert!(provider.force_flush().is_err());
        assert_eq!(stats.export_failed.load(Ordering::SeqCst), 20);
        assert_eq!(stats.exported.load(Ordering::SeqCst), 0);
        let _ = provider.shutdown();
    }

    #[test]
    fn shutdown_twice_is_an_error_not_a_hang() {
        let stats = Arc::new(SpanPipelineStats::default());
        let processor = BoundedBatchSpanProcessor::new(FailingExporter, config(4, 4), stats);
        assert!(processor.shutdown().is_ok());
        assert!(matches!(
            processor.shutdown(),
            Err(OTelSdkError::AlreadyShutdown)
        ));
        assert!(processor.force_flush().is_err());
    }
}
