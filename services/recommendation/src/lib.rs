//! ShopMax recommendation service (Mumbai): embeddings and vector search over the catalog (being written).
