//! Is the answer grounded? Every price, warehouse and catalog feature the answer states is
//! checked against the products retrieval returned, and the result is put on the trace: as the
//! GenAI conventions' `gen_ai.evaluation.result` event, parented to the LLM span it judges, and
//! on the request span, so a tail sampler and a person can find ungrounded answers.
//!
//! The check is deterministic and cheap (no second LLM call), so it runs on every answer. It
//! reads the answer sentence by sentence and finds claims three ways:
//! - a price: `Rs 85000`, `Rs. 85,000`, `₹85,000`, `INR 85000`, `Rs 0.85 lakh`, `85,000 rupees`;
//! - a warehouse: the word before "warehouse", or after "warehouse in/at", when it is a catalog
//!   city or a capitalised name (not "our", "which", or the shop's own name);
//! - a feature: a feature phrase of the catalog (`5G connectivity`), case-insensitively, only
//!   the longer where one phrase lies inside another, and not in a sentence that denies it
//!   ("does not list …").
//!
//! A claim must be true of the grounding product its sentence names (or, for "It …", the one
//! the sentence before named; else of any grounding product): moving a real price to the wrong
//! product is caught. The score is the share of grounded claims (1 when the answer states
//! none), and one ungrounded claim makes the label `ungrounded`. Features and cities only ever
//! named outside the catalog are not recognised as claims: the check says nothing about prose
//! it cannot read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
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
    features: Vec<String>,
    /// Finds every feature phrase in one pass over a sentence, overlapping matches included:
    /// searching for each of the catalog's phrases in turn was a quarter of the chatbot's
    /// instructions per request.
    feature_finder: AhoCorasick,
}

static VOCABULARY: LazyLock<Vocabulary> = LazyLock::new(|| {
    let catalog = catalog::Catalog::embedded();
    let features: Vec<String> = catalog
        .products()
        .iter()
        .flat_map(|p| p.features.iter().map(|f| f.to_lowercase()))
        // An empty phrase would match between any two bytes, even inside a character.
        .filter(|f| !f.trim().is_empty())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    Vocabulary {
        warehouses: catalog
            .products()
            .iter()
            .map(|p| p.warehouse.to_lowercase())
            .collect(),
        feature_finder: AhoCorasick::new(&features)
            .expect("the catalog's feature phrases build an automaton"),
        features,
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

    fn grounded_in(&self, products: &[&Product]) -> bool {
        products.iter().any(|p| match self {
            Self::Price(rupees) => p.price_inr == *rupees,
            Self::Warehouse(city) => p.warehouse.eq_ignore_ascii_case(city),
            Self::Feature(feature) => p.features.iter().any(|f| f.eq_ignore_ascii_case(feature)),
        })
    }
}

/// One claim and the products it must be true of.
struct Checked<'a> {
    claim: Claim,
    scope: Vec<&'a Product>,
}

/// Checks `answer` against the products it was to be grounded in.
pub(crate) fn evaluate(answer: &str, products: &[Product]) -> Evaluation {
    let checked = claims(answer, products);
    // One entry per distinct claim: unsupported if it failed anywhere.
    let mut verdicts: BTreeMap<Claim, bool> = BTreeMap::new();
    for c in &checked {
        let ok = c.claim.grounded_in(&c.scope);
        verdicts
            .entry(c.claim.clone())
            .and_modify(|v| *v &= ok)
            .or_insert(ok);
    }
    if verdicts.is_empty() {
        return Evaluation {
            score: 1.0,
            label: Label::Grounded,
            explanation: "the answer states no price, warehouse or catalog feature".into(),
        };
    }
    let unsupported: Vec<&Claim> = verdicts
        .iter()
        .filter(|(_, ok)| !**ok)
        .map(|(claim, _)| claim)
        .collect();
    let total = verdicts.len();
    let grounded = total - unsupported.len();
    #[expect(
        clippy::cast_precision_loss,
        reason = "an answer states a handful of claims"
    )]
    let score = grounded as f64 / total as f64;
    let (label, explanation) = if unsupported.is_empty() {
        (
            Label::Grounded,
            format!(
                "all {total} claims are in the grounding products: {}",
                list(verdicts.keys())
            ),
        )
    } else {
        (
            Label::Ungrounded,
            format!(
                "{} of {total} claims are not in the grounding products: {}",
                unsupported.len(),
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

/// Words that open a noun phrase or a question, not a warehouse's name ("Our warehouse",
/// "Which warehouse"), and names that are not places ("the ShopMax warehouse").
const NOT_A_PLACE: &[&str] = &[
    "a", "an", "the", "our", "your", "their", "its", "this", "that", "these", "those", "which",
    "what", "each", "every", "any", "no", "one", "main", "central", "local", "nearest", "same",
    "shopmax",
];

/// Words that deny what the sentence says ("does not list Ray tracing"): its features are not
/// claims.
const NEGATIONS: &[&str] = &["not", "no", "never", "without", "none", "neither", "nor"];

/// Every claim in `answer`, each with the products it must be true of: the grounding products
/// the claim's sentence names, else those the last sentence naming any named (a pronoun's
/// subject), else all of them.
fn claims<'a>(answer: &str, products: &'a [Product]) -> Vec<Checked<'a>> {
    let mut out = Vec::new();
    let mut subject: Vec<&Product> = Vec::new();
    for sentence in sentences(answer) {
        let lower = sentence.to_lowercase();
        let named: Vec<&Product> = products
            .iter()
            .filter(|p| contains_phrase(&lower, &p.name.to_lowercase()))
            .collect();
        if !named.is_empty() {
            subject = named;
        }
        let scope: Vec<&Product> = if subject.is_empty() {
            products.iter().collect()
        } else {
            subject.clone()
        };
        let mut add = |claim: Claim| {
            out.push(Checked {
                claim,
                scope: scope.clone(),
            });
        };
        for price in prices(sentence) {
            add(Claim::Price(price));
        }
        for city in warehouses(sentence) {
            add(Claim::Warehouse(city));
        }
        let words = words(&lower);
        let negated = words
            .iter()
            .any(|w| NEGATIONS.contains(w) || w.ends_with("n't"));
        if !negated {
            for feature in features(&lower) {
                add(Claim::Feature(feature));
            }
        }
    }
    out
}

/// The sentences of `text`: split after `.`, `!` or `?` followed by a space (not after "Rs."),
/// and at line breaks.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let boundary = match b {
            b'\n' => true,
            b'.' | b'!' | b'?' => {
                let next_is_space = bytes.get(i + 1).is_none_or(u8::is_ascii_whitespace);
                let after_rs = b == b'.' && text[start..i].to_ascii_lowercase().ends_with("rs");
                next_is_space && !after_rs
            }
            _ => false,
        };
        if boundary {
            out.push(&text[start..=i]);
            start = i + 1;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// Warehouse claims of a sentence: the word before "warehouse" ("the Mumbai warehouse") or
/// after "warehouse in/at" ("our warehouse in Mumbai"), when it is a catalog city or a
/// capitalised name that is not a determiner or the shop's own name. A city named otherwise
/// ("delivery to Kolkata") is no warehouse claim.
fn warehouses(sentence: &str) -> Vec<String> {
    let words = words(sentence);
    let mut out = Vec::new();
    let is_place = |word: &str| {
        let lower = word.to_lowercase();
        VOCABULARY.warehouses.contains(&lower)
            || (word.chars().next().is_some_and(char::is_uppercase)
                && !NOT_A_PLACE.contains(&lower.as_str()))
    };
    for (i, word) in words.iter().enumerate() {
        if !word.eq_ignore_ascii_case("warehouse") {
            continue;
        }
        if let Some(before) = i.checked_sub(1).and_then(|j| words.get(j))
            && is_place(before)
        {
            out.push(capitalised(&before.to_lowercase()));
        }
        if let (Some(preposition), Some(after)) = (words.get(i + 1), words.get(i + 2))
            && matches!(preposition.to_lowercase().as_str(), "in" | "at")
            && is_place(after)
        {
            out.push(capitalised(&after.to_lowercase()));
        }
    }
    out
}

/// Catalog features a (lower-case) sentence names; where one found phrase lies inside a longer
/// one found at the same place ("hdr10" in "hdr10+ support"), only the longer counts.
fn features(lower: &str) -> Vec<String> {
    let found: Vec<(usize, usize, &String)> = VOCABULARY
        .feature_finder
        .find_overlapping_iter(lower)
        .filter(|m| on_word_boundaries(lower, m.start(), m.end()))
        .map(|m| {
            (
                m.start(),
                m.end(),
                &VOCABULARY.features[m.pattern().as_usize()],
            )
        })
        .collect();
    found
        .iter()
        .filter(|(s, e, f)| {
            !found
                .iter()
                .any(|(s2, e2, f2)| f2.len() > f.len() && s2 <= s && e <= e2)
        })
        .map(|(_, _, f)| (*f).clone())
        .collect()
}

/// `mumbai` → `Mumbai`.
fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The words of `text`: runs of letters, digits and apostrophes.
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Whether `text[start..end]` is not part of a longer word.
fn on_word_boundaries(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
}

/// Whether `phrase` occurs in `text` on word boundaries (both lowercase).
fn contains_phrase(text: &str, phrase: &str) -> bool {
    text.match_indices(phrase)
        .any(|(at, _)| on_word_boundaries(text, at, at + phrase.len()))
}

/// Rupee amounts: a marker (`Rs`, `Rs.`, `INR`, `₹`, any case), optional spaces, then digits
/// with optional thousands separators (`85,000` and the Indian `1,25,000` alike) and decimals,
/// then optionally `lakh` or `crore`; or such a number followed by "rupees".
fn prices(text: &str) -> Vec<u64> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    for marker in ["rs.", "rs", "inr", "₹"] {
        for (at, _) in lower.match_indices(marker) {
            // A marker inside a word ("mrs", "hrs") is not one.
            if lower[..at]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric)
                || (marker == "rs" && lower[at + 2..].starts_with('.'))
            {
                continue;
            }
            if let Some(amount) = amount(lower[at + marker.len()..].trim_start()) {
                out.push(amount);
            }
        }
    }
    // "90,000 rupees"
    let words: Vec<&str> = lower.split_whitespace().collect();
    for pair in words.windows(2) {
        if pair[1].trim_end_matches(|c: char| !c.is_alphanumeric()) == "rupees"
            && let Some(amount) = amount(pair[0])
        {
            out.push(amount);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The rupees a number at the start of `text` says (`85,000`, `0.85 lakh`, `1.2 crore`).
fn amount(text: &str) -> Option<u64> {
    let number: String = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == '.')
        .collect();
    let number = number.trim_end_matches(['.', ',']);
    let digits: String = number.chars().filter(|c| *c != ',').collect();
    let value: f64 = digits.parse().ok()?;
    let rest = text[number.len()..].trim_start();
    let multiplier = if rest.starts_with("lakh") {
        1e5
    } else if rest.starts_with("crore") {
        1e7
    } else {
        1.0
    };
    let rupees = (value * multiplier).round();
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a non-negative price, rounded to whole rupees, checked in range"
    )]
    (0.0..1e15).contains(&rupees).then_some(rupees as u64)
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
    #[case::lower_case("priced at rs 90000", vec![90000])]
    #[case::rupees_after("costs 90,000 rupees", vec![90000])]
    #[case::lakh("about Rs 0.85 lakh", vec![85000])]
    #[case::not_a_marker_inside_a_word("Mrs 5 and hrs 7", vec![])]
    #[case::marker_without_digits("Rs unknown", vec![])]
    fn prices_are_read_in_the_forms_indian_retail_writes(
        #[case] text: &str,
        #[case] expected: Vec<u64>,
    ) {
        assert_eq!(prices(text), expected);
    }

    #[rstest]
    #[case::our_warehouse_in("The Samsung 65 QLED is Rs 85000 from our warehouse in Mumbai.")]
    #[case::shop_name("The Samsung 65 QLED is Rs 85000 at the ShopMax warehouse in Mumbai.")]
    #[case::question_word(
        "Which warehouse? The Samsung 65 QLED ships from the Mumbai warehouse for Rs 85000."
    )]
    #[case::a_city_that_is_not_a_warehouse(
        "The Samsung 65 QLED is Rs 85000; delivery to Kolkata takes 3 days."
    )]
    fn words_near_warehouse_that_name_no_place_are_no_claims(#[case] answer: &str) {
        let evaluation = evaluate(answer, &[product("samsung-65-qled")]);
        assert_eq!(evaluation.label, Label::Grounded, "{evaluation:?}");
    }

    #[test]
    fn a_feature_inside_a_longer_feature_is_not_a_claim_of_its_own() {
        let samsung = product("samsung-65-qled");
        let features = samsung.features.join(", ");
        let evaluation = evaluate(
            &format!("The Samsung 65 QLED offers {features}."),
            &[samsung],
        );
        assert_eq!(evaluation.label, Label::Grounded, "{evaluation:?}");
    }

    #[test]
    fn a_feature_the_answer_denies_is_not_a_claim() {
        let evaluation = evaluate(
            "No, the Samsung 65 QLED does not list 5G connectivity in its features.",
            &[product("samsung-65-qled")],
        );
        assert_eq!(evaluation.label, Label::Grounded, "{evaluation:?}");
    }

    #[test]
    fn a_fact_of_another_grounding_product_is_not_true_of_the_one_named() {
        let samsung = product("samsung-65-qled");
        let other = catalog::Catalog::embedded()
            .products()
            .iter()
            .find(|p| p.price_inr != samsung.price_inr && p.warehouse != samsung.warehouse)
            .expect("another product")
            .clone();
        let answer = format!(
            "The Samsung 65 QLED is priced at Rs {} and is available at the {} warehouse.",
            other.price_inr, other.warehouse
        );
        let evaluation = evaluate(&answer, &[samsung, other]);
        assert_eq!(evaluation.label, Label::Ungrounded, "{evaluation:?}");
        assert!(evaluation.score.abs() < f64::EPSILON, "{evaluation:?}");
    }

    #[test]
    fn a_pronoun_keeps_the_product_of_the_sentence_before() {
        let samsung = product("samsung-65-qled");
        let answer = format!(
            "The Samsung 65 QLED is priced at Rs {}. It ships from the {} warehouse.",
            samsung.price_inr, samsung.warehouse
        );
        let evaluation = evaluate(&answer, &[samsung]);
        assert_eq!(evaluation.label, Label::Grounded, "{evaluation:?}");
    }
}
