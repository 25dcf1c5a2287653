//! The fraud service's settings, from the environment.

use std::collections::HashSet;
use std::time::Duration;

use env_config::{FromEnv, Reader};

/// Service settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `PORT` (8082).
    pub port: u16,
    /// `FRAUD_VELOCITY_WINDOW_SECS` (60): the velocity rule's sliding window.
    pub velocity_window: Duration,
    /// `FRAUD_VELOCITY_LIMIT` (20): requests per customer per window before the rule fires.
    pub velocity_limit: u32,
    /// `FRAUD_MAX_TRACKED_CUSTOMERS` (10000): customers the velocity rule remembers at most.
    pub max_tracked_customers: usize,
    /// `FRAUD_BLOCKLIST` (empty): comma-separated customer ids that are always blocked.
    pub blocklist: HashSet<String>,
    /// `FRAUD_REVIEW_THRESHOLD` (0.5): combined score from which the decision is `review`.
    pub review_threshold: f64,
    /// `FRAUD_BLOCK_THRESHOLD` (0.8): combined score from which the decision is `block`.
    pub block_threshold: f64,
    /// The demo's fault knobs (`FAULT_LATENCY_MS`, `FAULT_ERROR_RATE`, `FAULT_ADMIN`).
    pub faults: service_kit::FaultConfig,
}

/// Largest accepted `FRAUD_VELOCITY_LIMIT`: each tracked customer keeps up to twice this many
/// timestamps, so the limit bounds memory too.
const MAX_VELOCITY_LIMIT: u32 = 1000;
/// Largest accepted `FRAUD_MAX_TRACKED_CUSTOMERS`.
const MAX_TRACKED_CUSTOMERS: usize = 1_000_000;
/// Longest accepted velocity window: a day.
const MAX_WINDOW_SECS: u64 = 86_400;

impl Default for Config {
    fn default() -> Self {
        Self {
            port: 8082,
            velocity_window: Duration::from_secs(60),
            velocity_limit: 20,
            max_tracked_customers: 10_000,
            blocklist: HashSet::new(),
            review_threshold: 0.5,
            block_threshold: 0.8,
            faults: service_kit::FaultConfig::default(),
        }
    }
}

impl FromEnv for Config {
    /// Reads every variable; a malformed or out-of-range value is recorded, so the service
    /// never starts on a typo.
    fn read(env: &mut Reader<'_>) -> Self {
        let d = Self::default();
        let window_secs = env.range_or(
            "FRAUD_VELOCITY_WINDOW_SECS",
            d.velocity_window.as_secs(),
            1..=MAX_WINDOW_SECS,
        );
        let review_threshold =
            env.range_or("FRAUD_REVIEW_THRESHOLD", d.review_threshold, 0.0..=1.0);
        let block_threshold = env.range_or("FRAUD_BLOCK_THRESHOLD", d.block_threshold, 0.0..=1.0);
        env.check(
            "FRAUD_REVIEW_THRESHOLD",
            review_threshold <= block_threshold,
            "must not exceed FRAUD_BLOCK_THRESHOLD",
        );
        Self {
            port: env.parse_or("PORT", d.port),
            velocity_window: Duration::from_secs(window_secs),
            velocity_limit: env.range_or(
                "FRAUD_VELOCITY_LIMIT",
                d.velocity_limit,
                1..=MAX_VELOCITY_LIMIT,
            ),
            max_tracked_customers: env.range_or(
                "FRAUD_MAX_TRACKED_CUSTOMERS",
                d.max_tracked_customers,
                1..=MAX_TRACKED_CUSTOMERS,
            ),
            blocklist: env
                .list("FRAUD_BLOCKLIST")
                .unwrap_or_default()
                .into_iter()
                .collect(),
            review_threshold,
            block_threshold,
            faults: service_kit::FaultConfig::read(env),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use env_config::ConfigError;
    use rstest::rstest;

    fn read(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(&env_config::from_pairs(pairs))
    }

    #[test]
    fn config_defaults() {
        let config = read(&[]).expect("config");
        assert_eq!(config, Config::default());
        assert_eq!(config.port, 8082);
        assert_eq!(config.velocity_window, Duration::from_secs(60));
        assert_eq!(config.velocity_limit, 20);
        assert_eq!(config.max_tracked_customers, 10_000);
    }

    #[test]
    fn config_reads_every_variable() {
        let config = read(&[
            ("PORT", "9000"),
            ("FRAUD_VELOCITY_WINDOW_SECS", "30"),
            ("FRAUD_VELOCITY_LIMIT", "5"),
            ("FRAUD_MAX_TRACKED_CUSTOMERS", "50"),
            ("FRAUD_BLOCKLIST", " bad-1, ,bad-2 "),
            ("FRAUD_REVIEW_THRESHOLD", "0.4"),
            ("FRAUD_BLOCK_THRESHOLD", "0.9"),
        ])
        .expect("config");
        assert_eq!(config.port, 9000);
        assert_eq!(config.velocity_window, Duration::from_secs(30));
        assert_eq!(config.velocity_limit, 5);
        assert_eq!(config.max_tracked_customers, 50);
        assert_eq!(
            config.blocklist,
            HashSet::from(["bad-1".to_owned(), "bad-2".to_owned()])
        );
        assert!((config.review_threshold - 0.4).abs() < f64::EPSILON);
        assert!((config.block_threshold - 0.9).abs() < f64::EPSILON);
    }

    #[rstest]
    #[case("PORT", "http")]
    #[case("FRAUD_VELOCITY_WINDOW_SECS", "0")]
    #[case("FRAUD_VELOCITY_LIMIT", "0")]
    #[case("FRAUD_VELOCITY_LIMIT", "100000")]
    #[case("FRAUD_MAX_TRACKED_CUSTOMERS", "0")]
    #[case("FRAUD_REVIEW_THRESHOLD", "1.5")]
    #[case("FRAUD_BLOCK_THRESHOLD", "0.3")]
    fn config_rejects_bad_values(#[case] key: &str, #[case] value: &str) {
        let err = read(&[(key, value)]).expect_err("must fail");
        assert!(
            err.key == key || err.key == "FRAUD_REVIEW_THRESHOLD",
            "{err}"
        );
    }
}
