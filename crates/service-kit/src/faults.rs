//! HotROD-style fault knobs for the demo and the fault drills: extra latency and an error rate on
//! a service's API, set at start-up by `FAULT_LATENCY_MS` and `FAULT_ERROR_RATE`, and at run time
//! by `POST /admin/faults` with `{"latency_ms": 800, "error_rate": 0.5}` (`GET` shows them).
//!
//! The knobs act inside the SERVER span, so a trace shows the injected delay as the service's
//! own time and an injected failure as its 503 (`error.type=503`), exactly as a real one would
//! look. The admin endpoint is unauthenticated, so it exists only with `FAULT_ADMIN=true` (the
//! local demo sets it): anyone who can reach it could switch fraud screening off.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use env_config::{FromEnv, Reader};
use serde::{Deserialize, Serialize};

use crate::{ApiError, ApiJson};

/// Where the knobs are turned at run time.
pub const ADMIN_PATH: &str = "/admin/faults";

/// The most latency a knob may add: a minute, so a typo cannot hang a service for good.
pub(crate) const MAX_LATENCY_MS: u64 = 60_000;

/// The knobs' settings: what `GET /admin/faults` shows and `POST` takes (fields left out keep
/// their value).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    /// Milliseconds added before each API request is handled.
    #[serde(default)]
    pub latency_ms: u64,
    /// Share of API requests answered 503 `fault_injected`, 0 to 1.
    #[serde(default)]
    pub error_rate: f64,
}

impl FromEnv for FaultSettings {
    fn read(env: &mut Reader<'_>) -> Self {
        Self {
            latency_ms: env.range_or("FAULT_LATENCY_MS", 0, 0..=MAX_LATENCY_MS),
            error_rate: env.range_or("FAULT_ERROR_RATE", 0.0, 0.0..=1.0),
        }
    }
}

/// The knobs' start-up configuration: their settings, and whether `/admin/faults` exists
/// (`FAULT_ADMIN`, off by default).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultConfig {
    /// The settings at start-up.
    pub initial: FaultSettings,
    /// Whether the unauthenticated admin endpoint is served.
    pub admin: bool,
}

impl FromEnv for FaultConfig {
    fn read(env: &mut Reader<'_>) -> Self {
        Self {
            initial: FaultSettings::read(env),
            admin: env.bool_or("FAULT_ADMIN", false),
        }
    }
}

/// The live knobs, shared by the middleware and the admin endpoint.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<Knobs>);

#[derive(Debug, Default)]
struct Knobs {
    admin: bool,
    latency_ms: AtomicU64,
    /// The error rate as an `f64`'s bits, so it can be swapped atomically.
    error_rate_bits: AtomicU64,
}

impl Faults {
    /// Knobs as configured.
    pub fn new(config: FaultConfig) -> Self {
        let faults = Self(Arc::new(Knobs {
            admin: config.admin,
            ..Knobs::default()
        }));
        faults.set(config.initial);
        faults
    }

    /// The current settings.
    pub fn get(&self) -> FaultSettings {
        FaultSettings {
            latency_ms: self.0.latency_ms.load(Ordering::Relaxed),
            error_rate: f64::from_bits(self.0.error_rate_bits.load(Ordering::Relaxed)),
        }
    }

    fn set(&self, settings: FaultSettings) {
        self.0
            .latency_ms
            .store(settings.latency_ms, Ordering::Relaxed);
        self.0.error_rate_bits.store(
            settings.error_rate.clamp(0.0, 1.0).to_bits(),
            Ordering::Relaxed,
        );
    }

    /// Wraps `api` with the knobs and, when enabled, adds the admin endpoint (outside them).
    pub fn apply(&self, api: Router) -> Router {
        let api = api.layer(axum::middleware::from_fn_with_state(self.clone(), inject));
        if !self.0.admin {
            return api;
        }
        let admin = Router::new()
            .route(ADMIN_PATH, get(show).post(change))
            .with_state(self.clone());
        api.merge(admin)
    }
}

async fn inject(State(faults): State<Faults>, request: Request, next: Next) -> Response {
    let settings = faults.get();
    if settings.latency_ms > 0 {
        tracing::info!(
            fault.latency_ms = settings.latency_ms,
            "fault.latency.injected"
        );
        tokio::time::sleep(Duration::from_millis(settings.latency_ms)).await;
    }
    if settings.error_rate > 0.0 && rand::random::<f64>() < settings.error_rate {
        tracing::warn!(
            fault.error_rate = settings.error_rate,
            "fault.error.injected"
        );
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "fault_injected",
            "a fault was injected (FAULT_ERROR_RATE or POST /admin/faults)",
        )
        .into_response();
    }
    next.run(request).await
}

async fn show(State(faults): State<Faults>) -> Json<FaultSettings> {
    Json(faults.get())
}

/// A partial update: only the fields sent change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    latency_ms: Option<u64>,
    error_rate: Option<f64>,
}

async fn change(
    State(faults): State<Faults>,
    ApiJson(change): ApiJson<Change>,
) -> Result<Json<FaultSettings>, ApiError> {
    let mut settings = faults.get();
    if let Some(latency_ms) = change.latency_ms {
        if latency_ms > MAX_LATENCY_MS {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                format!("latency_ms: must be at most {MAX_LATENCY_MS}"),
            ));
        }
        settings.latency_ms = latency_ms;
    }
    if let Some(rate) = change.error_rate {
        if !(0.0..=1.0).contains(&rate) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "error_rate: must be between 0 and 1",
            ));
        }
        settings.error_rate = rate;
    }
    faults.set(settings);
    tracing::info!(
        fault.latency_ms = settings.latency_ms,
        fault.error_rate = settings.error_rate,
        "fault.settings.changed"
    );
    Ok(Json(settings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt as _;

    fn admin() -> Faults {
        Faults::new(FaultConfig {
            admin: true,
            ..FaultConfig::default()
        })
    }

    #[tokio::test]
    async fn without_fault_admin_there_is_no_admin_endpoint() {
        let router = router(&Faults::default());
        let (status, _) = call(&router, "POST", ADMIN_PATH, r#"{"error_rate":1}"#).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(call(&router, "POST", "/work", "").await.1, "done");
    }

    fn router(faults: &Faults) -> Router {
        faults.apply(Router::new().route("/work", post(|| async { "done" })))
    }

    async fn call(router: &Router, method: &str, path: &str, body: &str) -> (StatusCode, String) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .expect("request");
        let response = router.clone().oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn an_error_rate_of_one_fails_every_request_with_a_json_503_and_zero_none() {
        let faults = Faults::new(FaultConfig {
            initial: FaultSettings {
                latency_ms: 0,
                error_rate: 1.0,
            },
            admin: true,
        });
        let router = router(&faults);
        let (status, body) = call(&router, "POST", "/work", "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("fault_injected"), "{body}");

        let (status, body) = call(&router, "POST", ADMIN_PATH, r#"{"error_rate":0}"#).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(call(&router, "POST", "/work", "").await.1, "done");
    }

    #[tokio::test]
    async fn latency_is_added_and_the_admin_endpoint_changes_only_what_it_is_sent() {
        let faults = admin();
        let router = router(&faults);
        let (status, body) = call(&router, "POST", ADMIN_PATH, r#"{"latency_ms":150}"#).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let started = std::time::Instant::now();
        assert_eq!(call(&router, "POST", "/work", "").await.1, "done");
        assert!(started.elapsed() >= Duration::from_millis(150));
        let (_, shown) = call(&router, "GET", ADMIN_PATH, "").await;
        let shown: FaultSettings = serde_json::from_str(&shown).expect("settings");
        assert_eq!(
            shown,
            FaultSettings {
                latency_ms: 150,
                error_rate: 0.0
            }
        );
    }

    #[tokio::test]
    async fn an_error_rate_outside_zero_to_one_is_refused() {
        let router = router(&admin());
        let (status, body) = call(&router, "POST", ADMIN_PATH, r#"{"error_rate":1.5}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, body) = call(&router, "POST", ADMIN_PATH, r#"{"latency_ms":60001}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, _) = call(&router, "POST", ADMIN_PATH, r#"{"latency":5}"#).await;
        assert!(status.is_client_error());
    }

    #[test]
    fn settings_come_from_the_environment_and_bad_values_are_refused() {
        let settings = FaultSettings::from_lookup(&env_config::from_pairs(&[
            ("FAULT_LATENCY_MS", "250"),
            ("FAULT_ERROR_RATE", "0.25"),
        ]))
        .expect("settings");
        assert_eq!(settings.latency_ms, 250);
        assert!((settings.error_rate - 0.25).abs() < f64::EPSILON);
        for bad in [("FAULT_ERROR_RATE", "2"), ("FAULT_LATENCY_MS", "60001")] {
            assert!(FaultSettings::from_lookup(&env_config::from_pairs(&[bad])).is_err());
        }
        let config = FaultConfig::from_lookup(&env_config::from_pairs(&[("FAULT_ADMIN", "true")]))
            .expect("config");
        assert!(config.admin);
        assert!(!FaultConfig::default().admin);
    }
}
