//! The small endpoints: `GET /v1/models`, `GET /v1/models/{id}`, and OpenAI-format 404 and 405
//! answers for everything else. The model endpoints live in `chat`, `embeddings` and `admin`.

use axum::http::{Method, Uri};

use crate::{MODELS, OpenAiError};

fn model_json(id: &str, created: u64) -> serde_json::Value {
    serde_json::json!({ "id": id, "object": "model", "created": created, "owned_by": "system" })
}

pub(crate) async fn list_models() -> axum::Json<serde_json::Value> {
    let data: Vec<_> = MODELS.iter().map(|(id, c)| model_json(id, *c)).collect();
    axum::Json(serde_json::json!({ "object": "list", "data": data }))
}

pub(crate) async fn get_model(
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<axum::Json<serde_json::Value>, OpenAiError> {
    MODELS
        .iter()
        .find(|(m, _)| *m == id)
        .map(|(m, c)| axum::Json(model_json(m, *c)))
        .ok_or_else(|| {
            OpenAiError::not_found(
                "model_not_found",
                format!("The model `{id}` does not exist or you do not have access to it."),
            )
        })
}

pub(crate) async fn not_found(method: Method, uri: Uri) -> OpenAiError {
    OpenAiError::not_found(
        "unknown_url",
        format!("Invalid URL ({method} {})", uri.path()),
    )
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> OpenAiError {
    OpenAiError {
        status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
        ..OpenAiError::not_found(
            "method_not_allowed",
            format!("Method {method} is not allowed for {}", uri.path()),
        )
    }
}
