//! Deterministic answers grounded only in the products written into the prompt.
//!
//! The chatbot writes its retrieved products into the system message as
//! [`catalog::Product::prompt_line`] lines; the mock reads every such line of the system (or
//! developer) messages back with [`catalog::parse_prompt_line`], never of the user's, and answers
//! the last user question from those products alone, so a test can tell a grounded answer from an
//! invented one.
//!
//! Rules, in order:
//! 1. The product is the one whose name shares the most words with the question (ties: the one
//!    whose name is covered best, then the first listed). When the question names none, or uses
//!    a pronoun ("it", "this") and an earlier user turn names a product at least as strongly,
//!    the earlier turns are searched, newest first, so "Does it support 5G?" can follow up.
//! 2. The intent is the first of: price ("price", "cost", "how much"), feature ("support",
//!    "include", "with", "offer", "come"), stock ("available", "in stock", "stock", "how many"),
//!    warehouse ("where", "warehouse", "ship", "deliver"), feature ("have", "has": late, so "do
//!    you have X in stock" and "which warehouse has X" are not feature questions), overview
//!    ("features", "specs"), otherwise a general summary.
//! 3. A feature question is answered "Yes" with the product's own feature phrase when the asked
//!    words match it, "No" otherwise.

use catalog::PromptProduct;

use crate::text::{self, fold_plural, is_stopword};

/// The answer when no product in the prompt matches the question.
pub(crate) const NOT_IN_CATALOG: &str = "Sorry, that product is not in the catalog: I could not find it \
     among the ShopMax products. I can help with the price, features, stock and warehouse of the \
     products we carry.";

/// The answer when the prompt says product lookup failed ([`catalog::LOOKUP_UNAVAILABLE`]).
pub(crate) const LOOKUP_UNAVAILABLE: &str = "Sorry, I cannot look up ShopMax products right now. \
     Please try again in a moment.";

/// Whether any of `contents` says that product lookup failed.
pub(crate) fn lookup_unavailable<'a>(contents: impl IntoIterator<Item = &'a str>) -> bool {
    contents
        .into_iter()
        .flat_map(str::lines)
        .any(|line| line.trim() == catalog::LOOKUP_UNAVAILABLE)
}

/// Every product written into any of `contents` (the grounding messages, in order), first
/// occurrence of each name only.
pub(crate) fn grounding<'a>(contents: impl IntoIterator<Item = &'a str>) -> Vec<PromptProduct> {
    let mut products: Vec<PromptProduct> = Vec::new();
    for line in contents.into_iter().flat_map(str::lines) {
        if let Some(product) = catalog::parse_prompt_line(line)
            && !products.iter().any(|p| p.name == product.name)
        {
            products.push(product);
        }
    }
    products
}

/// The answer to the last of `user_turns` (oldest first) from `products` alone.
pub(crate) fn answer(products: &[PromptProduct], user_turns: &[&str]) -> String {
    let Some(question) = user_turns.last() else {
        return NOT_IN_CATALOG.to_owned();
    };
    let words = Word::split(question);
    let current = pick_product(products, question);
    // "Does it support 5G?" after a question about the Samsung is about the Samsung, even though
    // "5G" alone matches the OnePlus 11 5G: a pronoun lets an earlier, stronger mention win.
    let refers_back = words.iter().any(|w| w.is_any(PRONOUNS));
    let earlier = || {
        user_turns
            .iter()
            .rev()
            .skip(1)
            .find_map(|turn| pick_product(products, turn))
    };
    let found = match current {
        Some((product, strength)) if refers_back => match earlier() {
            Some((before, s)) if s >= strength => Some(before),
            _ => Some(product),
        },
        Some((product, _)) => Some(product),
        None => earlier().map(|(product, _)| product),
    };
    let Some(product) = found else {
        return NOT_IN_CATALOG.to_owned();
    };
    match intent(&words) {
        Intent::Price => price_answer(product),
        Intent::Feature { weak } => feature_answer(product, &words, weak),
        Intent::Stock => stock_answer(product),
        Intent::Warehouse => warehouse_answer(product),
        Intent::Overview => overview_answer(product),
        Intent::General => general_answer(product),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    Price,
    /// `weak`: asked with "have"/"has", which may also just mean "do you sell it".
    Feature {
        weak: bool,
    },
    Stock,
    Warehouse,
    Overview,
    General,
}

/// Conversational words that never name a feature ("Can you help me with the OnePlus 11?").
const FILLER_WORDS: &[&str] = &[
    "how",
    "many",
    "much",
    "also",
    "whether",
    "ok",
    "okay",
    "hi",
    "hello",
    "thanks",
    "help",
    "know",
    "want",
    "need",
    "looking",
    "interested",
    "show",
    "find",
    "like",
    "would",
    "should",
    "still",
    "currently",
    "right",
    "now",
];
const PRONOUNS: &[&str] = &["it", "its", "this", "that", "they", "them"];
const PRICE_WORDS: &[&str] = &[
    "price",
    "prices",
    "priced",
    "pricing",
    "cost",
    "costs",
    "mrp",
    "expensive",
    "cheap",
];
const STRONG_FEATURE_WORDS: &[&str] = &[
    "support",
    "supports",
    "supported",
    "supporting",
    "include",
    "includes",
    "included",
    "including",
    "with",
    "offer",
    "offers",
    "come",
    "comes",
];
const WEAK_FEATURE_WORDS: &[&str] = &["have", "has", "got"];
const STOCK_WORDS: &[&str] = &["available", "availability", "stock", "units"];
const WAREHOUSE_WORDS: &[&str] = &[
    "where",
    "warehouse",
    "ship",
    "ships",
    "shipped",
    "shipping",
    "deliver",
    "delivers",
    "delivery",
    "dispatch",
    "dispatched",
];
const OVERVIEW_WORDS: &[&str] = &[
    "feature",
    "features",
    "spec",
    "specs",
    "specification",
    "specifications",
    "details",
];

/// One whitespace-separated word of the question, with its non-stopword tokens.
#[derive(Debug)]
struct Word {
    raw: String,
    lower: String,
    tokens: Vec<String>,
}

impl Word {
    fn split(question: &str) -> Vec<Self> {
        question
            .split_whitespace()
            .map(|w| {
                let raw = w
                    .trim_matches(|c: char| !c.is_alphanumeric() && c != '+')
                    .to_owned();
                let tokens = text::word_tokens(&raw)
                    .into_iter()
                    .filter(|t| !is_stopword(t))
                    .collect();
                Self {
                    lower: raw.to_lowercase(),
                    raw,
                    tokens,
                }
            })
            .collect()
    }

    fn is_any(&self, list: &[&str]) -> bool {
        list.contains(&self.lower.as_str())
    }

    /// A word that only signals intent (or nothing) and so never names a feature.
    fn is_filler(&self) -> bool {
        self.tokens.is_empty()
            || self.is_any(STRONG_FEATURE_WORDS)
            || self.is_any(WEAK_FEATURE_WORDS)
            || self.is_any(OVERVIEW_WORDS)
            || self.is_any(PRICE_WORDS)
            || self.is_any(STOCK_WORDS)
            || self.is_any(WAREHOUSE_WORDS)
            || self.is_any(FILLER_WORDS)
    }
}

fn intent(words: &[Word]) -> Intent {
    let has = |list: &[&str]| words.iter().any(|w| w.is_any(list));
    let phrase = |a: &str, b: &str| words.windows(2).any(|w| w[0].lower == a && w[1].lower == b);
    if has(PRICE_WORDS) || phrase("how", "much") {
        Intent::Price
    } else if has(STRONG_FEATURE_WORDS) {
        Intent::Feature { weak: false }
    } else if has(STOCK_WORDS) || phrase("how", "many") {
        Intent::Stock
    } else if has(WAREHOUSE_WORDS) {
        Intent::Warehouse
    } else if has(WEAK_FEATURE_WORDS) {
        Intent::Feature { weak: true }
    } else if has(OVERVIEW_WORDS) {
        Intent::Overview
    } else {
        Intent::General
    }
}

/// Non-stopword tokens of a product name, deduplicated, in order.
fn name_tokens(name: &str) -> Vec<String> {
    let mut tokens = text::content_tokens(name);
    let mut seen = std::collections::HashSet::new();
    tokens.retain(|t| seen.insert(t.clone()));
    tokens
}

/// The product the question names: most shared name words, then best-covered name, then first;
/// with the number of shared words.
fn pick_product<'p>(
    products: &'p [PromptProduct],
    question: &str,
) -> Option<(&'p PromptProduct, usize)> {
    let asked: std::collections::HashSet<String> =
        text::content_tokens(question).into_iter().collect();
    let mut best: Option<(&PromptProduct, usize, usize)> = None;
    for product in products {
        let name = name_tokens(&product.name);
        let matched = name.iter().filter(|t| asked.contains(*t)).count();
        // A shared number alone ("15", "65") names no product: "iPhone 15" must not find the
        // "ASUS Vivobook 15". At least one shared word must have a letter in it.
        let has_word = name
            .iter()
            .any(|t| asked.contains(t) && t.chars().any(char::is_alphabetic));
        if matched == 0 || !has_word {
            continue;
        }
        let better = match best {
            None => true,
            // Coverage matched/len compared by cross-multiplication to stay in integers.
            Some((_, m, len)) => matched > m || (matched == m && matched * len > m * name.len()),
        };
        if better {
            best = Some((product, matched, name.len()));
        }
    }
    best.map(|(product, matched, _)| (product, matched))
}

/// Indices of the longest run of consecutive content words that all belong to the product name:
/// that run is the product mention, so its words are not part of the asked feature.
fn mention_run(words: &[Word], name: &[String]) -> std::ops::Range<usize> {
    let mut best = 0..0;
    let mut best_len = 0;
    // The current run: where it starts and how many content words it holds.
    let mut current: Option<(usize, usize)> = None;
    for (i, word) in words.iter().enumerate() {
        if word.tokens.is_empty() {
            continue;
        }
        if word.tokens.iter().all(|t| name.contains(t)) {
            let (start, len) = current.map_or((i, 1), |(s, l)| (s, l + 1));
            current = Some((start, len));
            if len > best_len {
                best_len = len;
                best = start..i + 1;
            }
        } else {
            current = None;
        }
    }
    best
}

/// The asked feature: the words outside the product mention that are not intent words, and the
/// mention's own words, which are the feature when nothing else is ("Does it support 5G?" with
/// the OnePlus 11 5G picked by "5G").
fn asked_feature<'w>(words: &'w [Word], product: &PromptProduct) -> (Vec<&'w Word>, Vec<&'w Word>) {
    let run = mention_run(words, &name_tokens(&product.name));
    let mut outside = Vec::new();
    let mut inside = Vec::new();
    for (i, word) in words.iter().enumerate() {
        if word.is_filler() {
            continue;
        }
        if run.contains(&i) {
            inside.push(word);
        } else {
            outside.push(word);
        }
    }
    (outside, inside)
}

/// The product feature the asked words describe: at least half of the asked tokens must match
/// (a prefix of three or more letters counts, so "HDR" matches "HDR10+").
fn matching_feature<'p>(product: &'p PromptProduct, asked: &[&Word]) -> Option<&'p str> {
    let mut query: Vec<&str> = asked
        .iter()
        .flat_map(|w| w.tokens.iter())
        .map(|t| fold_plural(t))
        .collect();
    let mut seen = std::collections::HashSet::new();
    query.retain(|q| seen.insert(*q));
    if query.is_empty() {
        return None;
    }
    let mut best: Option<(&str, usize, usize)> = None;
    for feature in &product.features {
        let tokens: Vec<String> = text::content_tokens(feature);
        let folded: Vec<&str> = tokens.iter().map(|t| fold_plural(t)).collect();
        let overlap = query
            .iter()
            .filter(|q| {
                folded
                    .iter()
                    .any(|f| f == *q || (q.len() >= 3 && f.starts_with(*q)))
            })
            .count();
        if overlap == 0 || overlap * 2 < query.len() {
            continue;
        }
        let better = match best {
            None => true,
            Some((_, o, len)) => overlap > o || (overlap == o && folded.len() < len),
        };
        if better {
            best = Some((feature.as_str(), overlap, folded.len()));
        }
    }
    best.map(|(feature, _, _)| feature)
}

fn units(stock: u32) -> String {
    if stock == 1 {
        "1 unit".to_owned()
    } else {
        format!("{stock} units")
    }
}

fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn price_answer(p: &PromptProduct) -> String {
    if p.stock > 0 {
        format!(
            "The {} is priced at Rs {} and is available at the {} warehouse.",
            p.name, p.price_inr, p.warehouse
        )
    } else {
        format!(
            "The {} is priced at Rs {} but is currently out of stock at the {} warehouse.",
            p.name, p.price_inr, p.warehouse
        )
    }
}

fn feature_answer(p: &PromptProduct, words: &[Word], weak: bool) -> String {
    let (outside, mention) = asked_feature(words, p);
    let (asked, found) = if outside.is_empty() {
        let found = matching_feature(p, &mention);
        if found.is_none() {
            // "Do you have the OnePlus 11?" asks whether we sell it; "Does the X support?" asks
            // nothing in particular.
            return if weak {
                stock_answer(p)
            } else {
                overview_answer(p)
            };
        }
        (mention, found)
    } else {
        let found = matching_feature(p, &outside);
        (outside, found)
    };
    match found {
        Some(feature) if p.stock > 0 => format!(
            "Yes, the {} supports {feature} and is available at the {} warehouse.",
            p.name, p.warehouse
        ),
        Some(feature) => format!(
            "Yes, the {} supports {feature}, but it is currently out of stock at the {} warehouse.",
            p.name, p.warehouse
        ),
        None => {
            let phrase: Vec<&str> = asked.iter().map(|w| w.raw.as_str()).collect();
            format!(
                "No, the {} does not list {} among its features.",
                p.name,
                phrase.join(" ")
            )
        }
    }
}

fn stock_answer(p: &PromptProduct) -> String {
    if p.stock > 0 {
        format!(
            "Yes, the {} is in stock: {} at the {} warehouse.",
            p.name,
            units(p.stock),
            p.warehouse
        )
    } else {
        format!(
            "Sorry, the {} is currently out of stock at the {} warehouse.",
            p.name, p.warehouse
        )
    }
}

fn warehouse_answer(p: &PromptProduct) -> String {
    if p.stock > 0 {
        format!(
            "The {} ships from the {} warehouse, which has {} in stock.",
            p.name,
            p.warehouse,
            units(p.stock)
        )
    } else {
        format!(
            "The {} ships from the {} warehouse, where it is currently out of stock.",
            p.name, p.warehouse
        )
    }
}

fn overview_answer(p: &PromptProduct) -> String {
    if p.features.is_empty() {
        format!("The {} has no features listed in the catalog.", p.name)
    } else {
        format!("The {} offers {}.", p.name, list(&p.features))
    }
}

fn general_answer(p: &PromptProduct) -> String {
    let stock = if p.stock > 0 {
        format!("{} in stock", units(p.stock))
    } else {
        "currently out of stock".to_owned()
    };
    let mut answer = format!(
        "The {} ({}) is priced at Rs {} and ships from the {} warehouse ({stock}).",
        p.name, p.category, p.price_inr, p.warehouse
    );
    if !p.features.is_empty() {
        answer.push_str(&format!(" It offers {}.", list(&p.features)));
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalog::{Catalog, Product};
    use rstest::rstest;

    fn prompt_products(ids: &[&str]) -> Vec<PromptProduct> {
        let catalog = Catalog::embedded();
        let lines: Vec<String> = ids
            .iter()
            .map(|id| catalog.get(id).expect("known id").prompt_line())
            .collect();
        let system = format!(
            "You are ShopMax's assistant. Products:\n{}",
            lines.join("\n")
        );
        grounding([system.as_str()])
    }

    fn ask(ids: &[&str], question: &str) -> String {
        answer(&prompt_products(ids), &[question])
    }

    /// A prompt with a few distractors around the product under test.
    fn with_distractors(id: &str) -> Vec<&str> {
        let mut ids = vec!["samsung-65-qled", id, "oneplus-11-5g", "boat-airdopes-141"];
        let mut seen = std::collections::HashSet::new();
        ids.retain(|i| seen.insert(*i));
        ids
    }

    #[test]
    fn reproduces_the_seed_answers_exactly() {
        let ids = ["samsung-65-qled", "oneplus-11-5g"];
        assert_eq!(
            ask(&ids, "What is the price of Samsung 65 QLED?"),
            "The Samsung 65 QLED is priced at Rs 85000 and is available at the Mumbai warehouse."
        );
        assert_eq!(
            ask(&ids, "Does OnePlus 11 support 5G?"),
            "Yes, the OnePlus 11 5G supports 5G connectivity and is available at the Bangalore warehouse."
        );
    }

    #[rstest]
    #[case::price(
        "samsung-65-qled",
        "How much does the Samsung 65 QLED cost?",
        "The Samsung 65 QLED is priced at Rs 85000 and is available at the Mumbai warehouse."
    )]
    #[case::price_out_of_stock(
        "sony-alpha-7-iv",
        "What's the price of the Sony Alpha 7 IV?",
        "The Sony Alpha 7 IV is priced at Rs 209990 but is currently out of stock at the Delhi warehouse."
    )]
    #[case::feature_yes(
        "apple-iphone-15",
        "Does the Apple iPhone 15 support USB-C charging?",
        "Yes, the Apple iPhone 15 supports USB-C charging and is available at the Mumbai warehouse."
    )]
    #[case::feature_prefix(
        "samsung-65-qled",
        "Does Samsung 65 QLED support HDR?",
        "Yes, the Samsung 65 QLED supports HDR10+ and is available at the Mumbai warehouse."
    )]
    #[case::feature_before_product(
        "oneplus-11-5g",
        "Is 5G supported on the OnePlus 11?",
        "Yes, the OnePlus 11 5G supports 5G connectivity and is available at the Bangalore warehouse."
    )]
    #[case::feature_no(
        "samsung-65-qled",
        "Does Samsung 65 QLED support 5G?",
        "No, the Samsung 65 QLED does not list 5G among its features."
    )]
    #[case::feature_no_words(
        "realme-narzo-n55",
        "Does the Realme Narzo N55 support 5G?",
        "No, the Realme Narzo N55 does not list 5G among its features."
    )]
    #[case::feature_with(
        "sony-wh-1000xm5",
        "Is there a Sony WH-1000XM5 with noise cancellation?",
        "Yes, the Sony WH-1000XM5 supports Industry-leading noise cancellation and is available at the Mumbai warehouse."
    )]
    #[case::feature_have(
        "google-pixel-8",
        "Does the Pixel 8 have a dual camera?",
        "Yes, the Google Pixel 8 supports 50MP dual camera and is available at the Hyderabad warehouse."
    )]
    #[case::feature_out_of_stock(
        "nothing-phone-2a",
        "Does Nothing Phone 2a support 5G?",
        "Yes, the Nothing Phone 2a supports 5G connectivity, but it is currently out of stock at the Bangalore warehouse."
    )]
    #[case::stock(
        "jbl-flip-6",
        "Is the JBL Flip 6 in stock?",
        "Yes, the JBL Flip 6 is in stock: 40 units at the Pune warehouse."
    )]
    #[case::stock_have(
        "oneplus-11-5g",
        "Do you have the OnePlus 11 in stock?",
        "Yes, the OnePlus 11 5G is in stock: 40 units at the Bangalore warehouse."
    )]
    #[case::stock_sell(
        "oneplus-11-5g",
        "Do you have the OnePlus 11?",
        "Yes, the OnePlus 11 5G is in stock: 40 units at the Bangalore warehouse."
    )]
    #[case::help_with(
        "oneplus-11-5g",
        "Can you help me with the OnePlus 11?",
        "The OnePlus 11 5G offers 5G connectivity, Snapdragon 8 Gen 2, 6.7-inch 120Hz AMOLED display, 100W SUPERVOOC charging and Hasselblad triple camera."
    )]
    #[case::stock_out(
        "dyson-v12-detect-slim",
        "Is the Dyson V12 available?",
        "Sorry, the Dyson V12 Detect Slim is currently out of stock at the Bangalore warehouse."
    )]
    #[case::stock_how_many(
        "canon-eos-r50",
        "How many Canon EOS R50 units are left?",
        "Yes, the Canon EOS R50 is in stock: 8 units at the Mumbai warehouse."
    )]
    #[case::warehouse(
        "daikin-1-5-ton-inverter-ac",
        "Where does the Daikin 1.5 Ton Inverter AC ship from?",
        "The Daikin 1.5 Ton Inverter AC ships from the Hyderabad warehouse, which has 12 units in stock."
    )]
    #[case::warehouse_out(
        "nintendo-switch-oled",
        "Which warehouse has the Nintendo Switch OLED?",
        "The Nintendo Switch OLED ships from the Bangalore warehouse, where it is currently out of stock."
    )]
    #[case::overview(
        "fitbit-charge-6",
        "What are the features of the Fitbit Charge 6?",
        "The Fitbit Charge 6 offers Built-in GPS, Heart rate tracking, Google Maps and Wallet, 7-day battery life and Sleep tracking."
    )]
    #[case::general(
        "kent-grand-plus-water-purifier",
        "Tell me about the Kent Grand Plus",
        "The Kent Grand Plus Water Purifier (Water Purifier) is priced at Rs 17500 and ships from the Chennai warehouse (31 units in stock). It offers RO plus UV plus UF purification, 8 litre storage tank, TDS controller, Mineral retention and Wall mountable."
    )]
    #[case::hyphen_spelling(
        "sony-wh-1000xm5",
        "price of sony wh1000xm5",
        "The Sony WH-1000XM5 is priced at Rs 29990 and is available at the Mumbai warehouse."
    )]
    #[case::not_listed(
        "samsung-65-qled",
        "What is the price of the Nokia 3310?",
        NOT_IN_CATALOG
    )]
    fn answers_follow_the_rules(#[case] id: &str, #[case] question: &str, #[case] expected: &str) {
        assert_eq!(ask(&with_distractors(id), question), expected);
    }

    fn every_product() -> Vec<Product> {
        Catalog::embedded().products().to_vec()
    }

    fn whole_catalog_prompt() -> Vec<PromptProduct> {
        let lines: Vec<String> = every_product().iter().map(Product::prompt_line).collect();
        grounding(lines.iter().map(String::as_str))
    }

    #[test]
    fn price_questions_name_the_right_product_across_the_whole_catalog() {
        let products = whole_catalog_prompt();
        assert!(products.len() >= 44);
        for p in every_product() {
            let got = answer(&products, &[&format!("What is the price of {}?", p.name)]);
            let expected = if p.stock > 0 {
                format!(
                    "The {} is priced at Rs {} and is available at the {} warehouse.",
                    p.name, p.price_inr, p.warehouse
                )
            } else {
                format!(
                    "The {} is priced at Rs {} but is currently out of stock at the {} warehouse.",
                    p.name, p.price_inr, p.warehouse
                )
            };
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn every_feature_of_every_product_is_confirmed() {
        let products = whole_catalog_prompt();
        for p in every_product() {
            for feature in &p.features {
                let got = answer(&products, &[&format!("Does {} support {feature}?", p.name)]);
                let expected = format!("Yes, the {} supports {feature}", p.name);
                assert!(
                    got.starts_with(&expected),
                    "{got:?} should start with {expected:?}"
                );
                assert!(
                    got.contains(&format!("the {} warehouse", p.warehouse)),
                    "{got}"
                );
            }
        }
    }

    #[test]
    fn stock_and_warehouse_questions_answer_for_every_product() {
        let products = whole_catalog_prompt();
        for p in every_product() {
            let stock = answer(&products, &[&format!("Is the {} in stock?", p.name)]);
            assert!(
                stock.contains(&p.name) && stock.contains(&p.warehouse),
                "{stock}"
            );
            if p.stock > 0 {
                assert!(stock.contains(&format!("{} unit", p.stock)), "{stock}");
            } else {
                assert!(stock.contains("out of stock"), "{stock}");
            }
            let wh = answer(
                &products,
                &[&format!("Which warehouse ships the {}?", p.name)],
            );
            assert!(
                wh.starts_with(&format!(
                    "The {} ships from the {} warehouse",
                    p.name, p.warehouse
                )),
                "{wh}"
            );
        }
    }

    #[test]
    fn an_unknown_feature_is_denied_for_every_product() {
        let products = whole_catalog_prompt();
        for p in every_product() {
            let got = answer(
                &products,
                &[&format!("Does the {} support teleportation?", p.name)],
            );
            assert_eq!(
                got,
                format!(
                    "No, the {} does not list teleportation among its features.",
                    p.name
                )
            );
        }
    }

    #[test]
    fn a_shared_number_alone_names_no_product() {
        let got = ask(&["asus-vivobook-15"], "What is the price of iPhone 15?");
        assert_eq!(got, NOT_IN_CATALOG);
    }

    #[test]
    fn a_failed_lookup_is_recognised() {
        let prompt = format!("Products:\n{}\n", catalog::LOOKUP_UNAVAILABLE);
        assert!(lookup_unavailable([prompt.as_str()]));
        assert!(!lookup_unavailable(["Products:\n(no products found)\n"]));
    }

    #[test]
    fn answers_use_only_products_in_the_prompt() {
        // The Samsung is in the catalog but not in this prompt, so the mock must not know it.
        let got = ask(&["oneplus-11-5g"], "What is the price of Samsung 65 QLED?");
        assert_eq!(got, NOT_IN_CATALOG);
        assert_eq!(
            answer(&[], &["What is the price of Samsung 65 QLED?"]),
            NOT_IN_CATALOG
        );
        assert_eq!(
            answer(&prompt_products(&["oneplus-11-5g"]), &[]),
            NOT_IN_CATALOG
        );
    }

    #[test]
    fn a_follow_up_question_uses_the_product_of_an_earlier_turn() {
        let products = prompt_products(&["samsung-65-qled", "oneplus-11-5g"]);
        let got = answer(
            &products,
            &["Tell me about the OnePlus 11", "Does it support 5G?"],
        );
        assert!(
            got.starts_with("Yes, the OnePlus 11 5G supports 5G connectivity"),
            "{got}"
        );
        let got = answer(
            &products,
            &["Tell me about the Samsung 65 QLED", "How much is it?"],
        );
        assert!(
            got.starts_with("The Samsung 65 QLED is priced at Rs 85000"),
            "{got}"
        );
        // "5G" alone would name the OnePlus 11 5G, but "it" is the Samsung asked about before.
        let got = answer(
            &products,
            &["Tell me about the Samsung 65 QLED", "Does it support 5G?"],
        );
        assert_eq!(
            got,
            "No, the Samsung 65 QLED does not list 5G among its features."
        );
        // A product named outright wins over the earlier one.
        let got = answer(
            &products,
            &[
                "Tell me about the Samsung 65 QLED",
                "Is the OnePlus 11 in stock?",
            ],
        );
        assert!(
            got.starts_with("Yes, the OnePlus 11 5G is in stock"),
            "{got}"
        );
    }

    #[test]
    fn ties_go_to_the_best_covered_name_then_the_first_listed() {
        let line = |name: &str, price: u64| {
            format!(
                "- {name} | category: Phone | price: Rs {price} | warehouse: Pune | stock: 1 | features: x"
            )
        };
        let lines = [line("Apple iPhone 15 Pro", 2), line("Apple iPhone 15", 1)];
        let products = grounding(lines.iter().map(String::as_str));
        assert!(answer(&products, &["price of the iPhone 15?"]).contains("Rs 1 "));
        assert!(answer(&products, &["price of the iPhone 15 Pro?"]).contains("Rs 2 "));
        let lines = [line("Alpha One", 1), line("Alpha Two", 2)];
        let products = grounding(lines.iter().map(String::as_str));
        assert!(answer(&products, &["price of the Alpha?"]).contains("Rs 1 "));
    }

    #[test]
    fn grounding_reads_lines_from_every_message_once() {
        let catalog = Catalog::embedded();
        let samsung = catalog.get("samsung-65-qled").expect("seed").prompt_line();
        let oneplus = catalog.get("oneplus-11-5g").expect("seed").prompt_line();
        let system = format!("Products:\n{samsung}\nnot a product line");
        let user = format!("{oneplus}\n{samsung}\nWhich is cheaper?");
        let products = grounding([system.as_str(), user.as_str()]);
        let names: Vec<&str> = products.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Samsung 65 QLED", "OnePlus 11 5G"]);
    }
}
