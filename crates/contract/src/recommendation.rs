//! `POST /v1/recommend` of the recommendation service (Mumbai): the products nearest to a
//! question, by embedding similarity.

use catalog::Product;
use serde::{Deserialize, Serialize};

/// Path of the endpoint.
pub const PATH: &str = "/v1/recommend";
/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 2000;
/// Products returned when the request does not say.
pub const DEFAULT_TOP_K: usize = 3;
/// Most products one request may ask for.
pub const MAX_TOP_K: usize = 10;

/// What recommendation is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendRequest {
    /// What the customer is looking for: 1 to [`MAX_QUERY_CHARS`] characters, not blank.
    pub query: String,
    /// How many products to return: 1 to [`MAX_TOP_K`], default [`DEFAULT_TOP_K`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
}

/// A product with its similarity to the query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredProduct {
    /// The product.
    pub product: Product,
    /// Cosine similarity, -1..=1.
    pub score: f32,
}

/// Recommendation's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendResponse {
    /// The `top_k` nearest products, best first.
    pub products: Vec<ScoredProduct>,
    /// Up to three more products of the best hit's category, nearest first.
    pub related: Vec<Product>,
    /// The model that embedded the query.
    pub embedding_model: String,
    /// What the LLM calls made for this answer (embedding the query) cost.
    #[serde(default)]
    pub spend: crate::Spend,
}
