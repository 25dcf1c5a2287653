//! Where a trace is read from: the built-in receiver of `shopmax up`, a Tempo, or a Jaeger; and
//! waiting until a trace has all of its spans.

use std::time::{Duration, Instant};

use crate::trace::Trace;

/// The built-in receiver's query API: the OTLP/HTTP port of `shopmax up`.
pub const BUILTIN: &str = "http://127.0.0.1:4318";

/// A trace backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `shopmax up`'s receiver (Tempo's API shape).
    Builtin(String),
    /// Grafana Tempo 2.x: `GET /api/v2/traces/{id}`.
    Tempo(String),
    /// Jaeger 2.x (or 1.x): `GET /api/traces/{id}`.
    Jaeger(String),
}

impl Source {
    fn url(&self, trace_id: &str) -> String {
        match self {
            Self::Builtin(base) | Self::Tempo(base) => {
                format!("{}/api/v2/traces/{trace_id}", base.trim_end_matches('/'))
            }
            Self::Jaeger(base) => format!("{}/api/traces/{trace_id}", base.trim_end_matches('/')),
        }
    }

    /// Its name, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Builtin(base) => format!("the built-in receiver at {base}"),
            Self::Tempo(base) => format!("Tempo at {base}"),
            Self::Jaeger(base) => format!("Jaeger at {base}"),
        }
    }
}

/// Why a trace could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The backend does not have it (yet).
    #[error("trace {0} not found")]
    NotFound(String),
    /// The backend could not be reached.
    #[error("cannot reach {source_name}: {detail}")]
    Unreachable {
        /// Which backend.
        source_name: String,
        /// What failed.
        detail: String,
    },
    /// It answered something else than a trace.
    #[error("{source_name} answered {detail}")]
    Invalid {
        /// Which backend.
        source_name: String,
        /// What it answered.
        detail: String,
    },
}

/// A trace id as the backends want it: 32 lower-case hex digits. A `traceresponse` or
/// `traceparent` header value is accepted too.
pub fn normalise_trace_id(input: &str) -> Option<String> {
    let input = input.trim();
    let id = match input.split('-').collect::<Vec<_>>().as_slice() {
        [_, id, _, _] => *id,
        _ => input,
    };
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id.bytes().any(|b| b != b'0'))
        .then(|| id.to_ascii_lowercase())
}

/// The innermost cause of a reqwest error ("Connection refused"), which says more than its
/// outer message.
pub fn root_cause(error: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

/// Reads the trace once.
pub async fn fetch(
    client: &reqwest::Client,
    source: &Source,
    trace_id: &str,
) -> Result<Trace, FetchError> {
    let unreachable = |e: reqwest::Error| FetchError::Unreachable {
        source_name: source.describe(),
        detail: root_cause(&e),
    };
    let response = client
        .get(source.url(trace_id))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(unreachable)?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Err(FetchError::NotFound(trace_id.to_owned()));
    }
    if !response.status().is_success() {
        return Err(FetchError::Invalid {
            source_name: source.describe(),
            detail: format!("HTTP {}", response.status()),
        });
    }
    let json: serde_json::Value = response.json().await.map_err(|e| FetchError::Invalid {
        source_name: source.describe(),
        detail: format!("no JSON: {e}"),
    })?;
    let parsed = match source {
        Source::Jaeger(_) => Trace::from_jaeger_json(&json, trace_id),
        Source::Builtin(_) | Source::Tempo(_) => Trace::from_otlp_json(&json, trace_id),
    };
    let trace = parsed.map_err(|e| FetchError::Invalid {
        source_name: source.describe(),
        detail: e.to_string(),
    })?;
    if trace.spans.is_empty() {
        return Err(FetchError::NotFound(trace_id.to_owned()));
    }
    Ok(trace)
}

/// Whether a trace looks whole: it has a root, every parent it names is in it, and
/// `root_name`, when given, is the root's name.
pub fn looks_complete(trace: &Trace, root_name: Option<&str>) -> bool {
    let roots = trace.roots();
    roots.len() == 1
        && roots[0].parent_id.is_empty()
        && root_name.is_none_or(|name| roots[0].name == name)
}

/// Reads the trace until it looks whole and has stopped growing, or `patience` passes; then the
/// last read, and whether it looked whole.
pub async fn wait_for_trace(
    client: &reqwest::Client,
    source: &Source,
    trace_id: &str,
    root_name: Option<&str>,
    patience: Duration,
) -> Result<(Trace, bool), FetchError> {
    let deadline = Instant::now() + patience;
    let mut last: Option<Trace> = None;
    loop {
        match fetch(client, source, trace_id).await {
            Ok(trace) => {
                let stable = last
                    .as_ref()
                    .is_some_and(|l| l.spans.len() == trace.spans.len());
                if stable && looks_complete(&trace, root_name) {
                    return Ok((trace, true));
                }
                last = Some(trace);
            }
            Err(FetchError::NotFound(_)) => {}
            Err(other) => return Err(other),
        }
        if Instant::now() >= deadline {
            return match last {
                Some(trace) => {
                    let complete = looks_complete(&trace, root_name);
                    Ok((trace, complete))
                }
                None => Err(FetchError::NotFound(trace_id.to_owned())),
            };
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_taken_bare_or_from_a_traceresponse_header() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(normalise_trace_id(id).as_deref(), Some(id));
        assert_eq!(
            normalise_trace_id("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01")
                .as_deref(),
            Some(id)
        );
        assert_eq!(normalise_trace_id("xyz"), None);
        assert_eq!(
            normalise_trace_id(&"0".repeat(32)),
            None,
            "all zeros is invalid"
        );
    }
}
