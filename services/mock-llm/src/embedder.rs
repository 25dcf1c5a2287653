//! Deterministic text embeddings without a model: signed feature hashing of normalised words
//! and their character trigrams, L2-normalised.
//!
//! Words carry identity ("oneplus", "5g"); trigrams, weighted lower, let "speakers" meet
//! "speaker" and tolerate typos. A handful of shopper words are expanded to catalog words ("tv"
//! also means "television") because the catalog's categories use the formal word and shoppers do
//! not. Word pairs were tried and dropped: with 384 dimensions every extra feature adds
//! collision noise, and pairs cost more retrieval accuracy than they bought.

/// Dimensions when the request does not ask for others (the size of common small sentence
/// encoders, so vectors stay cheap to store and compare).
pub(crate) const DEFAULT_DIMENSIONS: usize = 384;
/// Most dimensions a request may ask for (text-embedding-3-large's size).
pub(crate) const MAX_DIMENSIONS: usize = 3072;

const WORD_WEIGHT: f32 = 1.0;
/// Low, so the dozen trigrams of a word do not outweigh the word itself.
const TRIGRAM_WEIGHT: f32 = 0.15;

/// Shopper words and the catalog words they also mean.
const EXPANSIONS: &[(&str, &[&str])] = &[
    ("phone", &["smartphone"]),
    ("mobile", &["smartphone"]),
    ("tv", &["television"]),
    ("fridge", &["refrigerator"]),
    ("ac", &["air", "conditioner"]),
    ("earphone", &["earbud"]),
    ("notebook", &["laptop"]),
    ("watch", &["smartwatch"]),
    ("console", &["gaming"]),
    ("wifi", &["wi", "fi"]),
];

/// The embedding of `text` with `dimensions` components (at least 1), unit length unless the
/// text has no letters or digits at all.
pub(crate) fn embed(text: &str, dimensions: usize) -> Vec<f32> {
    let dimensions = dimensions.clamp(1, MAX_DIMENSIONS);
    let mut vector = vec![0.0f32; dimensions];
    let words = normalised_words(text);
    let mut add = |feature: &str, weight: f32| {
        let hash = fnv1a(feature.as_bytes());
        // The index and the sign come from different bits so collisions cancel on average.
        let index = usize::try_from(hash % dimensions as u64).unwrap_or(0);
        let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
        vector[index] += sign * weight;
    };
    for word in &words {
        add(&format!("w:{word}"), WORD_WEIGHT);
        let padded: Vec<char> = format!("<{word}>").chars().collect();
        for gram in padded.windows(3) {
            let gram: String = gram.iter().collect();
            add(&format!("c:{gram}"), TRIGRAM_WEIGHT);
        }
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut vector {
            *x /= norm;
        }
    }
    vector
}

/// Cosine similarity of two vectors of equal length (0 if either is zero).
#[cfg(test)]
pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// Content words, plural-folded and expanded; all words when the text is only stopwords, so
/// "the" still embeds to something.
fn normalised_words(text: &str) -> Vec<String> {
    let all = crate::text::tokens(text);
    let content: Vec<&String> = all
        .iter()
        .filter(|t| !crate::text::is_stopword(t))
        .collect();
    let chosen: Vec<&String> = if content.is_empty() {
        all.iter().collect()
    } else {
        content
    };
    let mut words = Vec::with_capacity(chosen.len());
    for word in chosen {
        let folded = crate::text::fold_plural(word).to_owned();
        let expansions = EXPANSIONS
            .iter()
            .find(|(from, _)| *from == folded)
            .map(|(_, to)| *to)
            .unwrap_or_default();
        words.push(folded);
        words.extend(expansions.iter().map(|w| (*w).to_owned()));
    }
    words
}

/// FNV-1a, 64-bit, then a murmur3 finaliser: stable across Rust versions and platforms, unlike
/// `DefaultHasher`, so vectors stored by a client stay comparable with vectors made by a later
/// build. FNV alone mixes its low bits poorly (bit 0 is a parity of the input's bit 0s), and
/// the bucket index comes from the low bits, so without the finaliser similar words collide.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalog::{Catalog, Product};

    fn catalog_vectors() -> (Vec<Product>, Vec<Vec<f32>>) {
        let products = Catalog::embedded().products().to_vec();
        let vectors = products
            .iter()
            .map(|p| embed(&p.embedding_text(), DEFAULT_DIMENSIONS))
            .collect();
        (products, vectors)
    }

    /// Product indices by descending similarity to `query` (stable, so ties keep file order).
    fn ranking(query: &str, vectors: &[Vec<f32>]) -> Vec<usize> {
        let q = embed(query, DEFAULT_DIMENSIONS);
        let mut order: Vec<(usize, f32)> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (i, cosine(&q, v)))
            .collect();
        order.sort_by(|a, b| b.1.total_cmp(&a.1));
        order.into_iter().map(|(i, _)| i).collect()
    }

    #[test]
    fn vectors_are_deterministic_and_unit_length() {
        let a = embed("OnePlus 11 5G by OnePlus", DEFAULT_DIMENSIONS);
        assert_eq!(a, embed("OnePlus 11 5G by OnePlus", DEFAULT_DIMENSIONS));
        assert_eq!(a.len(), DEFAULT_DIMENSIONS);
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(embed("x", 7).len(), 7);
        assert_eq!(embed("x", 0).len(), 1);
    }

    #[test]
    fn stopword_only_and_empty_text_do_not_panic() {
        assert!(embed("the", 16).iter().any(|x| *x != 0.0));
        assert!(embed("?!", 16).iter().all(|x| *x == 0.0));
        assert_eq!(cosine(&[0.0; 4], &[1.0; 4]), 0.0);
    }

    /// How many products rank first for the query `template` makes of them, with the misses.
    fn top1(template: impl Fn(&Product) -> String) -> (usize, Vec<String>) {
        let (products, vectors) = catalog_vectors();
        let mut misses = Vec::new();
        for (i, p) in products.iter().enumerate() {
            let query = template(p);
            let top = ranking(&query, &vectors)[0];
            if top != i {
                misses.push(format!("{query:?} -> {}", products[top].name));
            }
        }
        (products.len() - misses.len(), misses)
    }

    #[test]
    fn every_product_ranks_first_for_its_price_question() {
        let (_, misses) = top1(|p| format!("What is the price of {}?", p.name));
        assert!(misses.is_empty(), "{misses:#?}");
    }

    #[test]
    fn every_product_ranks_first_for_its_feature_question() {
        let (_, misses) = top1(|p| {
            let first = p.features.first().map_or("", String::as_str);
            format!("Does {} support {first}?", p.name)
        });
        assert!(misses.is_empty(), "{misses:#?}");
    }

    #[test]
    fn every_product_ranks_first_for_stock_and_lower_case_questions() {
        let (_, misses) = top1(|p| format!("Is the {} in stock?", p.name));
        assert!(misses.is_empty(), "{misses:#?}");
        let (_, misses) = top1(|p| format!("how much is the {}", p.name.to_lowercase()));
        assert!(misses.is_empty(), "{misses:#?}");
    }

    #[test]
    fn most_products_rank_first_even_without_their_brand() {
        // "iPhone 15 price" shares "15" with other names and has no brand word to lean on, so
        // a few misses are expected from a model-free embedder; the bar guards against decay.
        let (hits, misses) = top1(|p| {
            let model: Vec<&str> = p.name.split_whitespace().skip(1).collect();
            format!("{} price", model.join(" "))
        });
        assert!(
            hits * 100 >= 90 * (hits + misses.len()),
            "{hits} hits, misses: {misses:#?}"
        );
    }

    #[rstest::rstest]
    #[case("a phone with 5G", "5G connectivity")]
    #[case("noise cancelling headphones", "noise cancellation")]
    #[case("a gaming console", "1TB SSD")]
    #[case("4K TV with Dolby Vision", "Dolby Vision")]
    #[case("laptop with RTX graphics", "RTX")]
    #[case("waterproof bluetooth speaker", "Bluetooth 5.1")]
    #[case("fridge", "Compressor")]
    #[case("washing machine with steam wash", "Steam wash")]
    #[case("smartwatch with ECG", "ECG")]
    #[case("air conditioner 5 star", "Copper condenser")]
    fn shopper_queries_find_a_fitting_product_in_the_top_three(
        #[case] query: &str,
        #[case] feature: &str,
    ) {
        let (products, vectors) = catalog_vectors();
        let top3: Vec<&Product> = ranking(query, &vectors)[..3]
            .iter()
            .map(|i| &products[*i])
            .collect();
        assert!(
            top3.iter()
                .any(|p| p.features.iter().any(|f| f.contains(feature))),
            "{query:?} -> {:?}",
            top3.iter().map(|p| &p.name).collect::<Vec<_>>()
        );
    }
}
