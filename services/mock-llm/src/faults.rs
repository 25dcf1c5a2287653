//! Fault injection, so retries, timeouts and error spans of the callers can be shown and tested
//! against a provider that misbehaves on demand.

use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// How a request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FaultMode {
    /// Answer normally.
    #[default]
    #[serde(rename = "none")]
    None,
    /// 429 with `Retry-After` and a rate-limit error body.
    #[serde(rename = "429")]
    RateLimited,
    /// 500 with a server error body.
    #[serde(rename = "500")]
    ServerError,
    /// Sleep `MOCK_LLM_SLOW_MS`, then answer normally.
    #[serde(rename = "slow")]
    Slow,
    /// A streamed chat sends its first piece of text and then nothing, never finishing; any other
    /// request never gets an answer at all.
    #[serde(rename = "stall")]
    Stall,
    /// A chat answers with a price the grounding does not have (each `Rs N` becomes
    /// `Rs N+5000`): the wrong answer the chatbot's grounding check must catch. Embeddings answer
    /// normally.
    #[serde(rename = "hallucinate")]
    Hallucinate,
}

impl FaultMode {
    /// The name `MOCK_LLM_FAULT` and `POST /admin/faults` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::RateLimited => "429",
            Self::ServerError => "500",
            Self::Slow => "slow",
            Self::Stall => "stall",
            Self::Hallucinate => "hallucinate",
        }
    }
}

impl std::fmt::Display for FaultMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Ok(Self::None),
            "429" => Ok(Self::RateLimited),
            "500" => Ok(Self::ServerError),
            "slow" => Ok(Self::Slow),
            "stall" => Ok(Self::Stall),
            "hallucinate" => Ok(Self::Hallucinate),
            other => Err(format!(
                "unknown fault {other:?}: expected none, 429, 500, slow, stall or hallucinate"
            )),
        }
    }
}

/// The fault one request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// What happens.
    pub mode: FaultMode,
    /// `Retry-After` for 429s.
    pub retry_after_secs: u64,
}

/// `Retry-After` of the faults set through the environment.
pub(crate) const DEFAULT_RETRY_AFTER_SECS: u64 = 1;

/// Faults queued by `POST /admin/faults`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Queued {
    /// The mode.
    pub mode: FaultMode,
    /// Requests still to fail this way.
    pub remaining: u64,
    /// `Retry-After` for 429s.
    pub retry_after_secs: u64,
}

/// The environment's fault for every request, overridden by queued faults while they last.
#[derive(Debug)]
pub struct Faults {
    always: FaultMode,
    queued: Mutex<Option<Queued>>,
}

impl Faults {
    /// Faults with `always` applied to every request unless one is queued.
    pub fn new(always: FaultMode) -> Self {
        Self {
            always,
            queued: Mutex::new(None),
        }
    }

    /// Makes the next `count` requests fail with `mode`; `none` (or a count of 0) clears the
    /// queue.
    pub fn queue(&self, mode: FaultMode, count: u64, retry_after_secs: u64) -> Option<Queued> {
        let next = (mode != FaultMode::None && count > 0).then_some(Queued {
            mode,
            remaining: count,
            retry_after_secs,
        });
        *self.lock() = next;
        next
    }

    /// What is queued now.
    pub fn queued(&self) -> Option<Queued> {
        *self.lock()
    }

    /// The environment's fault.
    pub fn always(&self) -> FaultMode {
        self.always
    }

    /// The fault for the next request, using up one queued fault if any.
    pub fn next(&self) -> Fault {
        let mut queued = self.lock();
        if let Some(q) = queued.as_mut() {
            let fault = Fault {
                mode: q.mode,
                retry_after_secs: q.retry_after_secs,
            };
            q.remaining = q.remaining.saturating_sub(1);
            if q.remaining == 0 {
                *queued = None;
            }
            return fault;
        }
        Fault {
            mode: self.always,
            retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Queued>> {
        // A panic while holding this lock cannot leave the Option half-written, so a poisoned
        // lock is still consistent.
        self.queued
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_faults_are_used_up_then_the_environment_fault_returns() {
        let faults = Faults::new(FaultMode::Slow);
        faults.queue(FaultMode::RateLimited, 2, 7);
        assert_eq!(
            faults.next(),
            Fault {
                mode: FaultMode::RateLimited,
                retry_after_secs: 7
            }
        );
        assert_eq!(faults.next().mode, FaultMode::RateLimited);
        assert_eq!(faults.next().mode, FaultMode::Slow);
        assert_eq!(faults.queued(), None);
    }

    #[test]
    fn none_clears_the_queue() {
        let faults = Faults::new(FaultMode::None);
        faults.queue(FaultMode::ServerError, 5, 1);
        assert!(faults.queue(FaultMode::None, 5, 1).is_none());
        assert_eq!(faults.next().mode, FaultMode::None);
    }

    #[rstest::rstest]
    #[case("none", FaultMode::None)]
    #[case("429", FaultMode::RateLimited)]
    #[case("500", FaultMode::ServerError)]
    #[case(" SLOW ", FaultMode::Slow)]
    fn modes_parse(#[case] text: &str, #[case] mode: FaultMode) {
        assert_eq!(text.parse::<FaultMode>(), Ok(mode));
    }

    #[test]
    fn unknown_modes_are_rejected() {
        assert!("503".parse::<FaultMode>().is_err());
    }
}
