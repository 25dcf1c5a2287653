//! The answer: fraud screening and product retrieval side by side, degradation when either
//! fails, the grounded prompt, and the LLM call answered as JSON (or handed to [`crate::stream`]).

use axum::response::{IntoResponse, Response};
use contract::chat::{ChatReply, ChatRequest, Degradation, ReplyProduct, Usage};
use contract::fraud::{Assessment, Decision, ScoreRequest};
use contract::recommendation::RecommendResponse;
use contract::{Cost, Spend};
use llm_client::semconv as sc;
use service_kit::ApiJson;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::AppState;
use crate::downstream::DownstreamError;
use crate::error::AppError;
use crate::evaluation;
use crate::identity::Identity;
use crate::prompt;

/// What the downstream services said, and what they could not say.
#[derive(Debug)]
pub(crate) struct Findings {
    /// Fraud's verdict; `None` when fraud was down and the request failed open.
    pub(crate) fraud: Option<Assessment>,
    /// Retrieval's products; `None` when recommendation was down.
    pub(crate) recommendations: Option<RecommendResponse>,
    /// What was unavailable, in the order it was found.
    pub(crate) degraded: Vec<Degradation>,
}

impl Findings {
    /// The products as the reply shows them.
    pub(crate) fn reply_products(&self) -> Vec<ReplyProduct> {
        self.recommendations
            .iter()
            .flat_map(|r| &r.products)
            .map(|p| ReplyProduct {
                id: p.product.id.clone(),
                name: p.product.name.clone(),
                price_inr: p.product.price_inr,
                warehouse: p.product.warehouse.clone(),
                score: p.score,
            })
            .collect()
    }
}

impl Findings {
    /// The products the answer is to be grounded in.
    pub(crate) fn grounding_products(&self) -> Vec<catalog::Product> {
        self.recommendations
            .iter()
            .flat_map(|r| &r.products)
            .map(|p| p.product.clone())
            .collect()
    }

    /// Checks the answer against the grounding products and puts the result on the trace
    /// (see [`crate::evaluation`]).
    pub(crate) fn evaluate(
        &self,
        response: &llm_client::ChatResponse,
        request_span: &tracing::Span,
    ) {
        let evaluation = evaluation::evaluate(&response.content, &self.grounding_products());
        evaluation::record(
            &evaluation,
            response.span_context.as_ref(),
            &response.id,
            request_span,
        );
    }

    /// What the whole answer cost: recommendation's calls and the chat's (`chat`, `None` when
    /// unpriced). Unknown when any call was unpriced, or recommendation failed (its calls may
    /// have been billed without our hearing of it). Recorded on the request span.
    pub(crate) fn total_cost(
        &self,
        chat: Option<&Cost>,
        request_span: &tracing::Span,
    ) -> Option<Cost> {
        let mut spend = Spend::default();
        match &self.recommendations {
            Some(r) => spend.add(&r.spend),
            None => spend.unpriced_calls += 1,
        }
        spend.add_call(chat);
        let total = spend.total().cloned();
        if let Some(cost) = &total {
            request_span.set_attribute(sc::SHOPMAX_REQUEST_COST_AMOUNT, cost.amount);
            request_span.set_attribute(sc::SHOPMAX_REQUEST_COST_CURRENCY, cost.currency.clone());
        }
        total
    }
}

/// Converts the provider's token counts into the reply's.
pub(crate) fn usage(usage: llm_client::Usage) -> Usage {
    Usage {
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        total_tokens: usage.total_tokens,
    }
}

/// Asks fraud and recommendation at once (the slower one sets the pace) and decides what the
/// request may go on with.
async fn gather(
    state: &AppState,
    request: &ChatRequest,
    identity: &Identity,
    client_address: Option<std::net::IpAddr>,
) -> Result<Findings, AppError> {
    let span = tracing::Span::current();
    let score_request = ScoreRequest {
        customer_id: identity.customer_id.clone(),
        session_id: identity.session_id.clone(),
        question: request.question.clone(),
        client_address,
    };
    let (fraud, recommendations) = tokio::join!(
        state.fraud.score(&score_request),
        state
            .recommender
            .recommend(&request.question, state.config.top_k),
    );

    let mut degraded = Vec::new();
    let fraud = match fraud {
        Ok(verdict) => {
            span.record("fraud.decision", verdict.decision.as_str());
            span.record("fraud.risk_score", verdict.risk_score);
            if verdict.decision == Decision::Block {
                return Err(AppError::Blocked(verdict));
            }
            Some(verdict)
        }
        Err(error @ (DownstreamError::Rejected { .. } | DownstreamError::Invalid { .. })) => {
            // A 4xx from fraud, or a verdict we cannot read (a decision or rule this build does
            // not know), is a contract break between us, not an outage: failing open on it
            // would quietly switch screening off.
            tracing::error!(error = %error, "chat.fraud.rejected");
            return Err(AppError::FraudRejected);
        }
        Err(error) => {
            tracing::warn!(error = %error, "chat.fraud.unavailable");
            if !state.config.fraud_fail_open {
                return Err(AppError::FraudUnavailable);
            }
            degraded.push(Degradation::FraudUnavailable);
            None
        }
    };
    let recommendations = match recommendations {
        Ok(r) => Some(r),
        Err(error) => {
            tracing::warn!(error = %error, "chat.recommendation.unavailable");
            degraded.push(Degradation::RecommendationUnavailable);
            None
        }
    };
    if !degraded.is_empty() {
        let names: Vec<&str> = degraded.iter().map(|d| d.as_str()).collect();
        span.record("chat.degraded", names.join(",").as_str());
    }
    let product_count = recommendations.as_ref().map_or(0, |r| r.products.len());
    span.record("chat.product_count", product_count as i64);
    Ok(Findings {
        fraud,
        recommendations,
        degraded,
    })
}

/// Answers the question, as JSON or as a stream; a stream is cut at `deadline`.
pub(crate) async fn answer(
    state: AppState,
    request: ChatRequest,
    identity: Identity,
    client_address: Option<std::net::IpAddr>,
    deadline: tokio::time::Instant,
    request_span: tracing::Span,
) -> Result<Response, AppError> {
    let findings = gather(&state, &request, &identity, client_address).await?;
    let products = findings.grounding_products();
    let grounding = if findings.recommendations.is_some() {
        prompt::Grounding::Products(&products)
    } else {
        prompt::Grounding::LookupUnavailable
    };
    let mut llm_request =
        prompt::build(&request.question, grounding, state.config.max_answer_tokens);
    llm_request.conversation_id = Some(identity.session_id.as_str().to_owned());
    if request.stream {
        return crate::stream::stream_answer(
            state,
            llm_request,
            findings,
            identity,
            deadline,
            request_span,
        )
        .await;
    }
    let response = state.llm.chat(llm_request).await?;
    let cost = findings.total_cost(response.cost.as_ref(), &request_span);
    findings.evaluate(&response, &request_span);
    let reply = ChatReply {
        answer: response.content,
        products: findings.reply_products(),
        fraud: findings.fraud,
        model: response.model,
        usage: usage(response.usage),
        cost,
        degraded: findings.degraded,
        session_id: identity.session_id,
        trace_id: telemetry::current_trace_id(),
    };
    tracing::info!(
        model = %reply.model,
        prompt_tokens = reply.usage.prompt_tokens,
        completion_tokens = reply.usage.completion_tokens,
        cost = reply.cost.as_ref().map(|c| c.amount),
        "chat.answer.sent"
    );
    Ok(ApiJson(reply).into_response())
}
