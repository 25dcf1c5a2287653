//! Is the answer grounded? Every price, warehouse and catalog feature the answer states is
//! checked against the products retrieval returned, and the result is put on the trace: as the
//! GenAI conventions' `gen_ai.evaluation.result` event, parented to the LLM span it judges, and
//! on the request span, so a tail sampler and a person can find ungrounded answers.
//!
//! The check is deterministic and cheap (no second LLM call), so it runs on every answer. It
//! finds claims three ways:
//! - a price: `Rs 85000`, `Rs. 85,000`, `₹85,000` or `INR 85000`;
//! - a warehouse: a warehouse city of the catalog, or any capitalised word before "warehouse";
//! - a feature: a feature phrase of the catalog (`5G connectivity`), case-insensitively.
//!
//! A claim is grounded when one of the grounding products has it. The score is the share of
//! grounded claims (1 when the answer states none), and one ungrounded claim makes the label
//! `ungrounded`. Features and cities only ever named outside the catalog are not recognised as
//! claims: the check catches an answer that moves a real fact to the wrong product, or invents
//! a price, and says nothing about prose it cannot read.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use catalog::Product;
use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// `gen_ai.evaluation.name` of this check.
pub(crate) const NAME: &str = "shopmax.grounding";

/// `gen_ai.evaluation.result`, the event of the GenAI conventions, and its attributes.
const EVENT: &str = "gen_ai.evaluation.result";
const EVALUATION_NAME: &str = "gen_ai.evaluation.name";
const SCORE_VALUE: &str = "gen_ai.evaluation.score.value";
const SCORE_LABEL: &str = "gen_ai.evaluation.score.label";
const EXPLANATION: &str = "gen_ai.evaluation.explanation";
const RESPONSE_ID: &str = "gen_ai.response.id";
/// The request span's attributes (ours: the conventions define the evaluation as an event).
pub(crate) const REQUEST_LABEL: &str = "shopmax.evaluation.grounding.label";
pub(crate) const REQUEST_SCORE: &str = "shopmax.evaluation.grounding.score";

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    /// Every claim is in the grounding products (or there is none).
    Grounded,
    /// At least one claim is not.
    Ungrounded,
}

impl Label {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Grounded => "grounded",
            Self::Ungrounded => "ungrounded",
        }
    }
}

/// The result of checking one answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Evaluation {
    /// Share of claims that are grounded, 0..=1; 1 when there are none.
    pub(crate) score: f64,
    pub(crate) label: Label,
    /// What was checked and what failed, for a person.
    pub(crate) explanation: String,
}

/// What the catalog can say: every warehouse city and feature phrase, lowercased.
struct Vocabulary {
    warehouses: BTreeSet<String>,
    features: BTreeSet<String>,
}

static VOCABULARY: LazyLock<Vocabulary> = LazyLock::new(|| {
    let catalog = catalog::Catalog::embedded();
    Vocabulary {
        warehouses: catalog
            .products()
            .iter()
            .map(|p| p.warehouse.to_lowercase())
            .collect(),
        features: catalog
            .products()
            .iter()
            .flat_map(|p| p.features.iter().map(|f| f.to_lowercase()))
            .collect(),
    }
});

/// One thing the answer states.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Claim {
    Price(u64),
    Warehouse(String),
    Feature(String),
}

impl Claim {
    fn describe(&self) -> String {
        match self {
            Self::Price(rupees) => format!("price Rs {rupees}"),
            Self::Warehouse(city) => format!("warehouse {city}"),
            Self::Feature(feature) => format!("feature \"{feature}\""),
        }
    }

    fn grounded_in(&self, products: &[Product]) -> bool {
        products.iter().any(|p| match self {
            Self::Price(rupees) => p.price_inr == *rupees,
            Self::Warehouse(city) => p.warehouse.eq_ignore_ascii_case(city),
            Self::Feature(feature) => p.features.iter().any(|f| f.eq_ignore_ascii_case(feature)),
        })
    }
}

/// Checks `answer` against the products it was to be grounded in.
pub(crate) fn evaluate(answer: &str, products: &[Product]) -> Evaluation {
    let claims = claims(answer);
    let unsupported: Vec<&Claim> = claims.iter().filter(|c| !c.grounded_in(products)).collect();
    if claims.is_empty() {
        return Evaluation {
            score: 1.0,
            label: Label::Grounded,
            explanation: "the answer states no price, warehouse or catalog feature".into(),
        };
    }
    let grounded = claims.len() - unsupported.len();
    #[expect(
        clippy::cast_precision_loss,
        reason = "an answer states a handful of claims"
    )]
    let score = grounded as f64 / claims.len() as f64;
    let (label, explanation) = if unsupported.is_empty() {
        (
            Label::Grounded,
            format!(
                "all {} claims are in the grounding products: {}",
                claims.len(),
                list(claims.iter())
            ),
        )
    } else {
        (
            Label::Ungrounded,
            format!(
                "{} of {} claims are not in the grounding products: {}",
                unsupported.len(),
                claims.len(),
                list(unsupported.into_iter())
            ),
        )
    };
    Evaluation {
        score,
        label,
        explanation,
    }
}

fn list<'a>(claims: impl Iterator<Item = &'a Claim>) -> String {
    claims.map(Claim::describe).collect::<Vec<_>>().join(", ")
}

/// Every distinct claim in `answer`, in a stable order.
fn claims(answer: &str) -> BTreeSet<Claim> {
    let mut out = BTreeSet::new();
    out.extend(prices(answer).into_iter().map(Claim::Price));
    let lower = answer.to_lowercase();
    let words = words(answer);
    for (i, word) in words.iter().enumerate() {
        let lowered = word.to_lowercase();
        let before_warehouse = words
            .get(i + 1)
            .is_some_and(|next| next.eq_ignore_ascii_case("warehouse"))
            && word.chars().next().is_some_and(char::is_uppercase);
        if VOCABULARY.warehouses.contains(&lowered) || before_warehouse {
            out.insert(Claim::Warehouse(capitalised(&lowered)));
        }
    }
    for feature in &VOCABULARY.features {
        if contains_phrase(&lower, feature) {
            out.insert(Claim::Feature(feature.clone()));
        }
    }
    out
}

/// `mumbai` → `Mumbai`.
fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The words of `text`: runs of letters and digits.
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether `phrase` occurs in `text` on word boundaries (both lowercase).
fn contains_phrase(text: &str, phrase: &str) -> bool {
    text.match_indices(phrase).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// Rupee amounts: a marker (`Rs`, `Rs.`, `INR`, `₹`), optional spaces, then digits with
/// optional thousands separators (`85,000` and the Indian `1,25,000` alike).
fn prices(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for marker in ["Rs.", "Rs", "INR", "₹"] {
        for (at, _) in text.match_indices(marker) {
            // A marker inside a word ("Mrs", "GRS") is not one.
            if text[..at]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
            {
                continue;
            }
            let rest = text[at + marker.len()..].trim_start();
            let digits: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ',')
                .filter(char::is_ascii_digit)
                .collect();
            if let Ok(amount) = digits.parse() {
                out.push(amount);
            }
        }
    }
    out
}

/// Puts `evaluation` on the trace: the `gen_ai.evaluation.result` event (a log record, as the
/// conventions define events) in the context of the LLM span `judged`, with the response id;
/// and the label and score on `request_span`.
pub(crate) fn record(
    evaluation: &Evaluation,
    judged: Option<&SpanContext>,
    response_id: &str,
    request_span: &tracing::Span,
) {
    request_span.set_attribute(REQUEST_LABEL, evaluation.label.as_str());
    request_span.set_attribute(REQUEST_SCORE, evaluation.score);
    // The log record takes its trace and span ids from the current context: make that the LLM
    // span's, which has ended by now and so cannot be entered.
    let _attached = judged.filter(|sc| sc.is_valid()).map(|sc| {
        opentelemetry::Context::current()
            .with_remote_span_context(sc.clone())
            .attach()
    });
    tracing::event!(
        name: EVENT,
        tracing::Level::INFO,
        {
            { EVALUATION_NAME } = NAME,
            { SCORE_VALUE } = evaluation.score,
            { SCORE_LABEL } = evaluation.label.as_str(),
            { EXPLANATION } = %evaluation.explanation,
            { RESPONSE_ID } = response_id,
        },
        "{EVENT}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn product(id: &str) -> Product {
        catalog::Catalog::embedded()
            .get(id)
            .expect("catalog product")
            .clone()
    }

    #[rstest]
    #[case::seed_samsung(
        "The Samsung 65 QLED is priced at Rs 85000 and is available at the Mumbai warehouse.",
        "samsung-65-qled"
    )]
    #[case::seed_oneplus(
        "Yes, the OnePlus 11 5G supports 5G connectivity and is available at the Bangalore warehouse.",
        "oneplus-11-5g"
    )]
    #[case::price_with_separators("It costs ₹85,000, shipped from Mumbai.", "samsung-65-qled")]
    fn the_seed_answers_are_grounded(#[case] answer: &str, #[case] id: &str) {
        let evaluation = evaluate(answer, &[product(id)]);
        assert_eq!(evaluation.label, Label::Grounded, "{evaluation:?}");
        assert!((evaluation.score - 1.0).abs() < f64::EPSILON);
        assert!(evaluation.explanation.starts_with("all "), "{evaluation:?}");
    }

    #[rstest]
    #[case::wrong_price(
        "The Samsung 65 QLED is priced at Rs 80000 at the Mumbai warehouse.",
        "price Rs 80000"
    )]
    #[case::wrong_warehouse(
        "The Samsung 65 QLED is priced at Rs 85000 at the Chennai warehouse.",
        "warehouse Chennai"
    )]
    #[case::invented_city(
        "It ships from the Atlantis warehouse for Rs 85000.",
        "warehouse Atlantis"
    )]
    #[case::feature_of_another_product(
        "The Samsung 65 QLED has 5G connectivity, Rs 85000.",
        "feature \"5g connectivity\""
    )]
    fn a_claim_not_in_the_grounding_products_is_ungrounded(
        #[case] answer: &str,
        #[case] named: &str,
    ) {
        let evaluation = evaluate(answer, &[product("samsung-65-qled")]);
        assert_eq!(evaluation.label, Label::Ungrounded, "{evaluation:?}");
        assert!(evaluation.score < 1.0);
        assert!(
            evaluation.explanation.contains(named),
            "{}",
            evaluation.explanation
        );
    }

    #[test]
    fn the_score_is_the_share_of_grounded_claims() {
        // Price and warehouse right, the feature wrong.
        let evaluation = evaluate(
            "Rs 85000 at the Mumbai warehouse, with 5G connectivity.",
            &[product("samsung-65-qled")],
        );
        assert!(
            (evaluation.score - 2.0 / 3.0).abs() < 1e-12,
            "{evaluation:?}"
        );
    }

    #[test]
    fn with_no_grounding_products_every_claim_is_ungrounded() {
        let evaluation = evaluate("It is Rs 85000 in Mumbai.", &[]);
        assert_eq!(evaluation.label, Label::Ungrounded);
        assert!(evaluation.score.abs() < f64::EPSILON);
    }

    #[test]
    fn an_answer_stating_nothing_checkable_is_grounded() {
        let evaluation = evaluate(
            "I could not find that product in our catalog.",
            &[product("samsung-65-qled")],
        );
        assert_eq!(evaluation.label, Label::Grounded);
        assert!(
            evaluation.explanation.contains("states no"),
            "{evaluation:?}"
        );
    }

    #[rstest]
    #[case::plain("Rs 85000", vec![85000])]
    #[case::dot_and_commas("Rs. 1,25,000 only", vec![125_000])]
    #[case::rupee_sign("₹999", vec![999])]
    #[case::inr("INR 85000", vec![85000])]
    #[case::not_a_marker_inside_a_word("Mrs 5 and GRS 7", vec![])]
    #[case::marker_without_digits("Rs unknown", vec![])]
    fn prices_are_read_in_the_forms_indian_retail_writes(
        #[case] text: &str,
        #[case] expected: Vec<u64>,
    ) {
        let mut got = prices(text);
        got.dedup();
        assert_eq!(got, expected);
    }
}
