//! ShopMax chatbot service (Bangalore): one question, one trace down to the LLM span (being written).
