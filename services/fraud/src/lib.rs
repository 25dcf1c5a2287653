//! ShopMax fraud service (Hyderabad): scores a chat request with real rules (being written).
