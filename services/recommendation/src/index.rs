//! The in-memory vector index of the catalog, and how it is built from the embedding model.
//!
//! Vectors are L2-normalized once when stored, so a query's cosine similarity with every product
//! is a plain dot product. The catalog is small (tens to thousands of products), which makes an
//! exact linear scan both the simplest and the fastest choice; an ANN structure would only add
//! error.

use std::time::Duration;

use llm_client::{EmbeddingClient, LlmError};
use tracing::Instrument as _;
use tracing::field::Empty;

/// L2-normalizes `v` in place; a zero vector stays zero (it then matches nothing).
pub(crate) fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        for x in v {
            *x /= norm;
        }
    }
}

/// Normalized product vectors, in catalog order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VectorIndex {
    vectors: Vec<Vec<f32>>,
    dims: usize,
    model: String,
}

/// Why vectors could not be used.
fn invalid(reason: impl Into<String>) -> LlmError {
    LlmError::InvalidResponse(reason.into())
}

/// Checks that `v` has `dims` finite components.
pub(crate) fn check_vector(v: &[f32], dims: usize) -> Result<(), LlmError> {
    if v.len() != dims {
        return Err(invalid(format!(
            "embedding has {} dimensions, expected {dims}",
            v.len()
        )));
    }
    if v.iter().any(|x| !x.is_finite()) {
        return Err(invalid("embedding has non-finite components"));
    }
    Ok(())
}

impl VectorIndex {
    /// Normalizes and stores `vectors`; they must be non-empty, of one dimension, and finite.
    pub(crate) fn new(
        mut vectors: Vec<Vec<f32>>,
        model: impl Into<String>,
    ) -> Result<Self, LlmError> {
        let dims = vectors.first().map_or(0, Vec::len);
        if dims == 0 {
            return Err(invalid("empty embeddings"));
        }
        for v in &mut vectors {
            check_vector(v, dims)?;
            normalize(v);
        }
        Ok(Self {
            vectors,
            dims,
            model: model.into(),
        })
    }

    /// Vector dimension.
    pub(crate) fn dims(&self) -> usize {
        self.dims
    }

    /// Number of vectors.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.vectors.len()
    }

    /// The model that embedded the catalog.
    pub(crate) fn model(&self) -> &str {
        &self.model
    }

    /// Every entry as `(position, cosine similarity)`, best first; ties keep catalog order.
    pub(crate) fn rank(&self, query: &[f32]) -> Result<Vec<(usize, f32)>, LlmError> {
        check_vector(query, self.dims)?;
        let mut q = query.to_vec();
        normalize(&mut q);
        let mut scored: Vec<(usize, f32)> = self
            .vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (i, v.iter().zip(&q).map(|(a, b)| a * b).sum()))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(scored)
    }
}

/// Runs `call` with a deadline; running out of time is [`LlmError::Timeout`].
pub(crate) async fn with_deadline<T>(
    deadline: Duration,
    call: impl Future<Output = Result<T, LlmError>>,
) -> Result<T, LlmError> {
    tokio::time::timeout(deadline, call)
        .await
        .unwrap_or(Err(LlmError::Timeout))
}

/// Embeds `texts` in batches of `batch` and returns the index. One root span `catalog.embed`
/// covers the attempt, so its embeddings calls form one trace of their own rather than being
/// scattered over as many traces as batches.
pub(crate) async fn build(
    embedder: &dyn EmbeddingClient,
    texts: &[String],
    batch: usize,
    deadline: Duration,
    attempt: u32,
) -> Result<VectorIndex, LlmError> {
    let batch = batch.max(1);
    let span = tracing::info_span!(
        parent: None,
        "catalog.embed",
        otel.kind = "internal",
        otel.status_code = Empty,
        catalog.size = texts.len(),
        catalog.embed.batch_size = batch,
        catalog.embed.batches = texts.len().div_ceil(batch),
        catalog.embed.attempt = attempt,
        catalog.embed.dimensions = Empty,
        gen_ai.request.model = embedder.model(),
        error.type = Empty,
    );
    let result = async {
        let mut vectors = Vec::with_capacity(texts.len());
        let mut model = None;
        for chunk in texts.chunks(batch) {
            let embedded = with_deadline(deadline, embedder.embed(chunk)).await?;
            if embedded.vectors.len() != chunk.len() {
                return Err(invalid(format!(
                    "asked for {} embeddings, got {}",
                    chunk.len(),
                    embedded.vectors.len()
                )));
            }
            model.get_or_insert(embedded.model);
            vectors.extend(embedded.vectors);
        }
        let model = model.unwrap_or_else(|| embedder.model().to_owned());
        VectorIndex::new(vectors, model)
    }
    .instrument(span.clone())
    .await;
    match &result {
        Ok(index) => {
            span.record("catalog.embed.dimensions", index.dims());
        }
        Err(e) => {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", e.error_type());
            // Inside the span, so the log line carries the failed attempt's trace id.
            span.in_scope(|| {
                tracing::warn!(
                    attempt,
                    error.type = %e.error_type(),
                    error.message = %e,
                    "catalog.embed.failed"
                );
            });
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_makes_unit_vectors_and_leaves_zero_alone() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let mut z = vec![0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, vec![0.0, 0.0]);
    }

    #[test]
    fn rank_is_cosine_best_first() {
        let index = VectorIndex::new(vec![vec![1.0, 0.0], vec![0.0, 5.0], vec![1.0, 1.0]], "m")
            .expect("index");
        let ranked = index.rank(&[0.0, 2.0]).expect("rank");
        assert_eq!(ranked[0].0, 1);
        assert!((ranked[0].1 - 1.0).abs() < 1e-6);
        assert_eq!(ranked[1].0, 2);
        assert!((ranked[1].1 - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert_eq!(ranked[2], (0, 0.0));
    }

    #[test]
    fn bad_vectors_are_rejected() {
        assert!(VectorIndex::new(vec![], "m").is_err());
        assert!(VectorIndex::new(vec![vec![]], "m").is_err());
        assert!(VectorIndex::new(vec![vec![1.0], vec![1.0, 2.0]], "m").is_err());
        assert!(VectorIndex::new(vec![vec![f32::NAN]], "m").is_err());
        let index = VectorIndex::new(vec![vec![1.0, 0.0]], "m").expect("index");
        assert!(index.rank(&[1.0]).is_err());
        assert!(index.rank(&[f32::INFINITY, 0.0]).is_err());
    }
}
