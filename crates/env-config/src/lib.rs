//! Reading settings from environment variables, in one place for every ShopMax crate.
//!
//! One [`Reader`] serves both kinds of settings, and differs only in how it ends:
//! - a service's own settings are **strict**: [`Reader::finish`] turns the first problem into a
//!   [`ConfigError`], so a service never starts on a typo in its own configuration;
//! - the `OTEL_*` settings are **lenient**: [`Reader::into_warnings`] turns every problem into a
//!   warning and the default stays in force, as the OpenTelemetry specification requires of an
//!   SDK (telemetry must never stop a service from starting).
//!
//! Every read goes through a lookup function, so tests pass a map ([`from_pairs`]) instead of
//! mutating the process environment. Empty and blank values count as unset, as the
//! OpenTelemetry specification says of its variables.
//!
//! # Layout
//! - [`Reader`]: typed reads (`string_or`, `parse_or`, `bool_or`, `range_or`, `positive_or`,
//!   `millis_or`, `positive_millis_or`, `list`) that record problems instead of returning early.
//! - [`ConfigError`]: the strict outcome; [`Reader::into_warnings`]: the lenient one.
//! - [`FromEnv`]: what a settings struct implements to get `from_env()` and `from_lookup()`.
//! - [`process`], [`from_pairs`]: lookup functions over the process environment or a fixed set.

use std::collections::HashMap;
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

/// Looks a variable up by name.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Why a configuration variable was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    /// The variable.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

/// One rejected value and the default used in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    key: String,
    reason: String,
    fallback: Option<String>,
}

/// Reads variables through a lookup function and records every problem on the way, so a
/// settings struct is built in one pass and judged at the end (see the crate docs).
pub struct Reader<'a> {
    lookup: Lookup<'a>,
    problems: Vec<Problem>,
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets: show only which variables were rejected.
        f.debug_struct("Reader")
            .field(
                "problems",
                &self.problems.iter().map(|p| &p.key).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<'a> Reader<'a> {
    /// A reader over `lookup`.
    pub fn new(lookup: Lookup<'a>) -> Self {
        Self {
            lookup,
            problems: Vec::new(),
        }
    }

    /// The value, trimmed, if set and not blank.
    pub fn get(&self, key: &str) -> Option<String> {
        (self.lookup)(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The first of `keys` that is set, with its name: per-signal variables before general ones.
    pub fn first_of(&self, keys: &[&str]) -> Option<(String, String)> {
        keys.iter()
            .find_map(|key| self.get(key).map(|v| ((*key).to_owned(), v)))
    }

    /// The value, or `default` when unset.
    pub fn string_or(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or_else(|| default.to_owned())
    }

    /// A comma-separated list, entries trimmed and empty entries dropped; `None` when unset.
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        self.get(key).map(|v| split_list(&v))
    }

    /// Records that `key` is wrong because of `reason`; `fallback`, if any, is what is used
    /// instead (it appears in lenient warnings).
    pub fn reject(&mut self, key: &str, reason: impl Into<String>, fallback: Option<String>) {
        self.problems.push(Problem {
            key: key.to_owned(),
            reason: reason.into(),
            fallback,
        });
    }

    /// Records a problem with `key` unless `ok`: for rules across variables, such as
    /// "the review threshold must not exceed the block threshold".
    pub fn check(&mut self, key: &str, ok: bool, reason: &str) {
        if !ok {
            self.reject(key, reason, None);
        }
    }

    /// The value parsed as `T`, or `default` when unset or unparsable (recorded).
    pub fn parse_or<T: FromStr + Display>(&mut self, key: &str, default: T) -> T {
        match self.get(key) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                self.reject(
                    key,
                    format!("cannot parse {v:?}"),
                    Some(default.to_string()),
                );
                default
            }),
        }
    }

    /// `true` or `false` in any case; `default` when unset or anything else (recorded).
    pub fn bool_or(&mut self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                self.reject(
                    key,
                    format!("{v:?} is not true or false"),
                    Some(default.to_string()),
                );
                default
            }
        }
    }

    /// The value parsed as `T` within `range`; `default` when unset, unparsable or outside
    /// (recorded).
    pub fn range_or<T>(&mut self, key: &str, default: T, range: RangeInclusive<T>) -> T
    where
        T: FromStr + Display + PartialOrd + Clone,
    {
        let problems = self.problems.len();
        let value = self.parse_or(key, default.clone());
        if self.problems.len() > problems || range.contains(&value) {
            return value;
        }
        self.reject(
            key,
            format!("must be between {} and {}", range.start(), range.end()),
            Some(default.to_string()),
        );
        default
    }

    /// A whole number above zero (a size or a count, where zero would disable the thing sized);
    /// `default` when unset, unparsable or zero (recorded).
    pub fn positive_or<T>(&mut self, key: &str, default: T) -> T
    where
        T: FromStr + Display + PartialOrd + Default,
    {
        match self.get(key) {
            None => default,
            Some(v) => match v.parse::<T>() {
                Ok(n) if n > T::default() => n,
                _ => {
                    self.reject(
                        key,
                        format!("{v:?} is not a whole number above 0"),
                        Some(default.to_string()),
                    );
                    default
                }
            },
        }
    }

    /// An `http://` or `https://` URL with a host, without trailing slashes; `default` when unset
    /// or anything else (recorded): a service must not start pointing at nothing.
    pub fn http_url_or(&mut self, key: &str, default: &str) -> String {
        let Some(value) = self.get(key) else {
            return default.trim_end_matches('/').to_owned();
        };
        let host = value
            .strip_prefix("http://")
            .or_else(|| value.strip_prefix("https://"))
            .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
        match host {
            Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
                value.trim_end_matches('/').to_owned()
            }
            _ => {
                self.reject(key, "must be an http(s) URL", Some(default.to_owned()));
                default.trim_end_matches('/').to_owned()
            }
        }
    }

    /// Whole milliseconds, zero allowed; `default_ms` when unset or not a whole number.
    pub fn millis_or(&mut self, key: &str, default_ms: u64) -> Duration {
        match self.get(key) {
            None => Duration::from_millis(default_ms),
            Some(v) => match v.parse::<u64>() {
                Ok(ms) => Duration::from_millis(ms),
                Err(_) => {
                    self.reject(
                        key,
                        format!("{v:?} is not a whole number of milliseconds"),
                        Some(default_ms.to_string()),
                    );
                    Duration::from_millis(default_ms)
                }
            },
        }
    }

    /// Whole milliseconds above zero: a zero timeout would fail every request.
    pub fn positive_millis_or(&mut self, key: &str, default_ms: u64) -> Duration {
        let value = self.millis_or(key, default_ms);
        if value.is_zero() {
            self.reject(key, "must be greater than 0", Some(default_ms.to_string()));
            return Duration::from_millis(default_ms);
        }
        value
    }

    /// Strict ending: the first problem, if any, as an error.
    pub fn finish(self) -> Result<(), ConfigError> {
        match self.problems.into_iter().next() {
            None => Ok(()),
            Some(p) => Err(ConfigError {
                key: p.key,
                reason: p.reason,
            }),
        }
    }

    /// Strict ending around a finished value: `value` if no problem was recorded.
    pub fn finish_with<T>(self, value: T) -> Result<T, ConfigError> {
        self.finish().map(|()| value)
    }

    /// Lenient ending: one warning per problem, naming the default used instead.
    pub fn into_warnings(self) -> Vec<String> {
        self.problems
            .into_iter()
            .map(|p| match p.fallback {
                Some(fallback) => format!("{}: {}; using {fallback}", p.key, p.reason),
                None => format!("{}: {}", p.key, p.reason),
            })
            .collect()
    }
}

/// Settings read strictly from the environment: implement [`FromEnv::read`] once, and get
/// `from_env()` (the process environment) and `from_lookup()` (a map, in tests) that fail on the
/// first bad value. Settings that embed other settings call their `read` on the same reader, so
/// every problem is judged together.
pub trait FromEnv: Sized {
    /// Reads every variable, recording problems on `env` instead of returning early.
    fn read(env: &mut Reader<'_>) -> Self;

    /// Reads variables through `lookup`; the first bad value is the error.
    fn from_lookup(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let mut env = Reader::new(lookup);
        let value = Self::read(&mut env);
        env.finish_with(value)
    }

    /// Reads the process environment; the first bad value is the error.
    fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&process())
    }
}

/// Splits `a, b,,c` into `["a", "b", "c"]`.
pub fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The process environment as a lookup function.
pub fn process() -> impl Fn(&str) -> Option<String> {
    |key| std::env::var(key).ok()
}

/// A fixed set of variables as a lookup function (for tests and embedding).
pub fn from_pairs(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |key| map.get(key).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn blank_values_count_as_unset() {
        let lookup = from_pairs(&[("A", "  "), ("B", " x ")]);
        let r = Reader::new(&lookup);
        assert_eq!(r.get("A"), None);
        assert_eq!(r.get("B").as_deref(), Some("x"));
        assert_eq!(r.string_or("A", "d"), "d");
    }

    #[test]
    fn booleans_parse_in_any_case_and_reject_typos() {
        let lookup = from_pairs(&[("A", "TRUE"), ("B", "false"), ("C", "yes")]);
        let mut r = Reader::new(&lookup);
        assert!(r.bool_or("A", false));
        assert!(!r.bool_or("B", true));
        assert!(r.bool_or("D", true));
        assert!(!r.bool_or("C", false));
        let error = r.finish().expect_err("C is a typo");
        assert_eq!(error.key, "C");
    }

    #[rstest]
    #[case("5", 5)]
    #[case("1", 1)]
    #[case("10", 10)]
    fn ranges_accept_their_bounds(#[case] value: &str, #[case] expected: usize) {
        let lookup = from_pairs(&[("K", value)]);
        let mut r = Reader::new(&lookup);
        assert_eq!(r.range_or("K", 3usize, 1..=10), expected);
        assert_eq!(r.finish(), Ok(()));
    }

    #[rstest]
    #[case("0", "must be between 1 and 10")]
    #[case("11", "must be between 1 and 10")]
    #[case("x", "cannot parse \"x\"")]
    fn ranges_reject_what_is_outside_and_keep_the_default(
        #[case] value: &str,
        #[case] reason: &str,
    ) {
        let lookup = from_pairs(&[("K", value)]);
        let mut r = Reader::new(&lookup);
        assert_eq!(r.range_or("K", 3usize, 1..=10), 3);
        assert_eq!(
            r.finish(),
            Err(ConfigError {
                key: "K".into(),
                reason: reason.into()
            })
        );
    }

    #[test]
    fn positive_millis_refuse_zero_and_millis_allow_it() {
        let lookup = from_pairs(&[("Z", "0"), ("N", "-1")]);
        let mut r = Reader::new(&lookup);
        assert_eq!(r.millis_or("Z", 7), Duration::ZERO);
        assert_eq!(r.positive_millis_or("Z", 7), Duration::from_millis(7));
        assert_eq!(r.millis_or("N", 9), Duration::from_millis(9));
        assert_eq!(
            r.into_warnings(),
            vec![
                "Z: must be greater than 0; using 7".to_owned(),
                "N: \"-1\" is not a whole number of milliseconds; using 9".to_owned(),
            ]
        );
    }

    #[rstest]
    #[case("0")]
    #[case("-3")]
    #[case("many")]
    fn positive_counts_refuse_zero_negatives_and_words(#[case] value: &str) {
        let lookup = from_pairs(&[("N", value)]);
        let mut r = Reader::new(&lookup);
        assert_eq!(r.positive_or("N", 4), 4);
        assert_eq!(
            r.into_warnings(),
            vec![format!(
                "N: {value:?} is not a whole number above 0; using 4"
            )]
        );
    }

    #[test]
    fn positive_counts_accept_one_and_keep_the_default_when_unset() {
        let lookup = from_pairs(&[("ONE", "1")]);
        let mut r = Reader::new(&lookup);
        assert_eq!(r.positive_or("ONE", 4), 1);
        assert_eq!(r.positive_or("UNSET", 4), 4);
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn strict_reading_reports_the_first_problem_and_lenient_reading_all() {
        let lookup = from_pairs(&[("A", "x"), ("B", "y")]);
        let read = |r: &mut Reader<'_>| (r.parse_or("A", 1u8), r.parse_or("B", 2u8));
        let mut strict = Reader::new(&lookup);
        assert_eq!(read(&mut strict), (1, 2));
        assert_eq!(strict.finish().expect_err("bad").key, "A");
        let mut lenient = Reader::new(&lookup);
        read(&mut lenient);
        assert_eq!(lenient.into_warnings().len(), 2);
    }

    #[test]
    fn checks_across_variables_are_recorded_without_a_fallback() {
        let lookup = from_pairs(&[]);
        let mut r = Reader::new(&lookup);
        r.check("A", true, "fine");
        r.check("B", false, "must not exceed C");
        assert_eq!(r.into_warnings(), vec!["B: must not exceed C".to_owned()]);
    }

    #[rstest]
    #[case("http://fraud:8082", Some("http://fraud:8082"))]
    #[case("https://api.openai.com/v1/", Some("https://api.openai.com/v1"))]
    #[case("notaurl", None)]
    #[case("ftp://x", None)]
    #[case("http://", None)]
    #[case("http:///path", None)]
    fn urls_must_be_http_with_a_host(#[case] value: &str, #[case] expected: Option<&str>) {
        let lookup = from_pairs(&[("URL", value)]);
        let mut r = Reader::new(&lookup);
        let url = r.http_url_or("URL", "http://localhost:1/");
        match expected {
            Some(expected) => {
                assert_eq!(url, expected);
                assert_eq!(r.finish(), Ok(()));
            }
            None => {
                assert_eq!(url, "http://localhost:1");
                assert_eq!(
                    r.finish().expect_err(value).reason,
                    "must be an http(s) URL"
                );
            }
        }
    }

    #[test]
    fn lists_and_first_of() {
        let lookup = from_pairs(&[("L", " a, ,b "), ("G", "g"), ("S", "s")]);
        let r = Reader::new(&lookup);
        assert_eq!(r.list("L"), Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(r.list("M"), None);
        assert_eq!(
            r.first_of(&["X", "S", "G"]),
            Some(("S".to_owned(), "s".to_owned()))
        );
    }

    #[derive(Debug, PartialEq)]
    struct Settings {
        port: u16,
        timeout: Duration,
    }

    impl FromEnv for Settings {
        fn read(env: &mut Reader<'_>) -> Self {
            Self {
                port: env.parse_or("PORT", 80),
                timeout: env.positive_millis_or("TIMEOUT_MS", 1000),
            }
        }
    }

    #[test]
    fn from_env_types_read_strictly() {
        let ok = Settings::from_lookup(&from_pairs(&[("PORT", "8080")])).expect("valid");
        assert_eq!(
            ok,
            Settings {
                port: 8080,
                timeout: Duration::from_secs(1)
            }
        );
        let error = Settings::from_lookup(&from_pairs(&[("TIMEOUT_MS", "0")])).expect_err("zero");
        assert_eq!(error.key, "TIMEOUT_MS");
    }

    #[test]
    fn debug_never_shows_values() {
        let lookup = from_pairs(&[("SECRET", "hunter2")]);
        let mut r = Reader::new(&lookup);
        let _ = r.parse_or("SECRET", 1u8);
        let debug = format!("{r:?}");
        assert!(
            debug.contains("SECRET") && !debug.contains("hunter2"),
            "{debug}"
        );
    }
}
