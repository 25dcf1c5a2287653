//! Serving until ctrl-c or SIGTERM, with a bounded drain of in-flight requests.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;

/// How long in-flight requests may take to finish after a stop signal. Kubernetes kills a pod
/// 30 s after SIGTERM by default; this leaves time for the telemetry flush that follows.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `router` on `listener` until ctrl-c or SIGTERM, then lets in-flight requests finish,
/// for at most [`DRAIN_TIMEOUT`]: a request stuck on a slow LLM must not keep the process alive
/// past the orchestrator's kill, which would lose the final telemetry flush.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown_signal().await;
        let _ = stopping_tx.send(());
    };
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal);
    let deadline = async move {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!(drain_secs = DRAIN_TIMEOUT.as_secs(), "service.shutdown.drain_timed_out");
            Ok(())
        }
    }
}

/// Why a service could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The port could not be bound (in use, or not permitted).
    #[error("binding port {port}: {source}")]
    Bind {
        /// The port.
        port: u16,
        /// The bind error.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("serving: {0}")]
    Serve(#[from] std::io::Error),
}

/// Binds `0.0.0.0:port` and [`serve`]s `router` there until a stop signal: what every
/// service's `main` does.
pub async fn serve_on(port: u16, router: Router) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|source| ServeError::Bind { port, source })?;
    tracing::info!(port, "service.listening");
    serve(listener, router).await?;
    tracing::info!("service.stopped");
    Ok(())
}

/// Resolves on ctrl-c or SIGTERM (what `docker stop` and Kubernetes send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("service.shutdown.started");
}
