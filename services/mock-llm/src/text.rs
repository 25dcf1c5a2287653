//! Word normalisation shared by answer matching and the embedder, so "WH-1000XM5", "wh1000xm5"
//! and "Wh-1000xm5" all meet on the same tokens.

/// Words that say nothing about which product or feature is meant.
const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "any", "are", "at", "be", "buy", "by", "can", "could", "did", "do",
    "does", "for", "from", "get", "i", "in", "is", "it", "its", "me", "my", "of", "on", "or",
    "please", "s", "tell", "that", "the", "there", "this", "to", "us", "we", "what", "which",
    "you", "your",
];

pub(crate) fn is_stopword(token: &str) -> bool {
    STOPWORDS.contains(&token)
}

/// Lower-case alphanumeric tokens of one whitespace-separated word. A word joined by hyphens or
/// dots also yields its parts glued together, so both spellings of a model number match.
pub(crate) fn word_tokens(word: &str) -> Vec<String> {
    let lower = word.to_lowercase();
    let parts: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|p| !p.is_empty())
        .collect();
    let mut tokens: Vec<String> = parts.iter().map(|p| (*p).to_owned()).collect();
    if parts.len() > 1 {
        tokens.push(parts.concat());
    }
    tokens
}

/// All tokens of `text`, in order, stopwords included.
pub(crate) fn tokens(text: &str) -> Vec<String> {
    text.split_whitespace().flat_map(word_tokens).collect()
}

/// Tokens of `text` without stopwords.
pub(crate) fn content_tokens(text: &str) -> Vec<String> {
    tokens(text)
        .into_iter()
        .filter(|t| !is_stopword(t))
        .collect()
}

/// A crude plural fold ("speakers" -> "speaker") applied to both sides of a comparison.
pub(crate) fn fold_plural(token: &str) -> &str {
    if token.len() > 3 && token.ends_with('s') && !token.ends_with("ss") {
        &token[..token.len() - 1]
    } else {
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyphenated_model_numbers_match_their_glued_spelling() {
        assert_eq!(
            tokens("Sony WH-1000XM5"),
            ["sony", "wh", "1000xm5", "wh1000xm5"]
        );
        assert!(tokens("wh1000xm5?").contains(&"wh1000xm5".to_owned()));
    }

    #[test]
    fn content_tokens_drop_stopwords_and_punctuation() {
        assert_eq!(
            content_tokens("What is the price of the OnePlus 11?"),
            ["price", "oneplus", "11"]
        );
    }

    #[test]
    fn plural_fold_leaves_short_words_and_double_s_alone() {
        assert_eq!(fold_plural("speakers"), "speaker");
        assert_eq!(fold_plural("gas"), "gas");
        assert_eq!(fold_plural("glass"), "glass");
    }
}
