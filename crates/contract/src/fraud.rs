//! `POST /v1/score` of the fraud service (Hyderabad): the chatbot asks before it spends an LLM
//! call on a question.

use serde::{Deserialize, Serialize};

use crate::{CustomerId, SessionId};

/// Path of the endpoint.
pub const PATH: &str = "/v1/score";

/// Longest question fraud accepts, in characters (more than the chatbot's own limit, so any
/// question the chatbot accepts is scored).
pub const MAX_QUESTION_CHARS: usize = 4000;

/// What fraud is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    /// The customer, or [`CustomerId::anonymous`].
    pub customer_id: CustomerId,
    /// The chat session.
    pub session_id: SessionId,
    /// The question as asked: 1 to [`MAX_QUESTION_CHARS`] characters, not blank.
    pub question: String,
    /// Set when the identity is unverified (the caller is outside the edge's trust boundary): the
    /// shopper's network address as the edge established it (forwarding headers believed only
    /// from trusted proxies). Velocity is then counted by it, whatever customer id is named:
    /// unlike an unverified id or a session id, it cannot be changed for free on every request,
    /// and naming someone else's id cannot run up their count. `None` for a customer a trusted
    /// gateway vouched for, counted by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_address: Option<std::net::IpAddr>,
}

/// What to do with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Let it through.
    Allow,
    /// Let it through but flag it for a human.
    Review,
    /// Refuse it.
    Block,
}

impl Decision {
    /// The wire name, also used as a span attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Review => "review",
            Self::Block => "block",
        }
    }
}

/// The rules fraud runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Customer id on the blocklist.
    Blocklist,
    /// Too many requests in the window.
    Velocity,
    /// Attempts to override the assistant's instructions.
    PromptInjection,
    /// Insults and threats.
    Abuse,
    /// Malformed or machine-made questions.
    PayloadAnomaly,
}

impl Rule {
    /// Every rule, in the order they run.
    pub const ALL: [Self; 5] = [
        Self::Blocklist,
        Self::Velocity,
        Self::PromptInjection,
        Self::Abuse,
        Self::PayloadAnomaly,
    ];

    /// The wire name, also used in attribute names (`fraud.rule.velocity.score`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blocklist => "blocklist",
            Self::Velocity => "velocity",
            Self::PromptInjection => "prompt_injection",
            Self::Abuse => "abuse",
            Self::PayloadAnomaly => "payload_anomaly",
        }
    }
}

/// Why a rule contributed to the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// The rule.
    pub rule: Rule,
    /// What the rule saw, for a human reviewer.
    pub detail: String,
    /// The rule's score, 0..=1, three decimals.
    #[serde(default)]
    pub score: f64,
}

/// Fraud's verdict on one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// Combined risk, 0 (fine) to 1 (fraud), three decimals.
    pub risk_score: f64,
    /// The decision.
    pub decision: Decision,
    /// The rules that fired, highest score first (none when absent).
    #[serde(default)]
    pub reasons: Vec<Reason>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_wire_names_match_as_str() {
        for rule in Rule::ALL {
            let json = serde_json::to_string(&rule).expect("json");
            assert_eq!(json, format!("\"{}\"", rule.as_str()));
        }
        for decision in [Decision::Allow, Decision::Review, Decision::Block] {
            let json = serde_json::to_string(&decision).expect("json");
            assert_eq!(json, format!("\"{}\"", decision.as_str()));
        }
    }

    #[test]
    fn an_assessment_round_trips() {
        let json = r#"{"risk_score":0.9,"decision":"block","reasons":[{"rule":"prompt_injection","detail":"matched x","score":0.9}]}"#;
        let assessment: Assessment = serde_json::from_str(json).expect("parses");
        assert_eq!(assessment.decision, Decision::Block);
        assert_eq!(assessment.reasons[0].rule, Rule::PromptInjection);
        assert_eq!(serde_json::to_string(&assessment).expect("json"), json);
    }
}
