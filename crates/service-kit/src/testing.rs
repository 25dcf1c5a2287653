//! Reading response bodies in handler tests (feature `testing`); panics on a broken body, as a
//! test should.
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use http_body_util::BodyExt as _;

/// The status and the whole body.
pub async fn body_bytes(response: Response) -> (StatusCode, Bytes) {
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("response body")
        .to_bytes();
    (status, bytes)
}

/// The status and the body as JSON (`Null` when it is not JSON).
pub async fn json_body(response: Response) -> (StatusCode, serde_json::Value) {
    let (status, bytes) = body_bytes(response).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}
