//! `POST /v1/score`.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use contract::fraud::{self, Assessment, ScoreRequest};
use service_kit::ApiJson;

use crate::AppState;
use crate::error::AppError;

/// The API routes, before the shared layers (see [`crate::app`]).
pub(crate) fn api(state: AppState) -> Router {
    Router::new()
        .route(fraud::PATH, post(score))
        .with_state(state)
}

fn validate(request: &ScoreRequest) -> Result<(), AppError> {
    if request.question.trim().is_empty() {
        return Err(AppError::InvalidField("question must not be empty".into()));
    }
    if request.question.chars().count() > fraud::MAX_QUESTION_CHARS {
        return Err(AppError::InvalidField(format!(
            "question must be at most {} characters",
            fraud::MAX_QUESTION_CHARS
        )));
    }
    Ok(())
}

async fn score(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ScoreRequest>,
) -> Result<Json<Assessment>, AppError> {
    validate(&request)?;
    Ok(Json(state.scorer.score_request(
        request.customer_id.as_str(),
        request.session_id.as_str(),
        request.client_address,
        &request.question,
    )))
}
