//! The chatbot's settings, from the environment.

use std::time::Duration;

use env_config::{FromEnv, Reader};
use llm_client::LlmConfig;

/// Chatbot settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen port (`PORT`, 8080).
    pub port: u16,
    /// Fraud service base URL (`FRAUD_URL`, `http://localhost:8082`).
    pub fraud_url: String,
    /// Recommendation service base URL (`RECOMMENDATION_URL`, `http://localhost:8081`).
    pub recommendation_url: String,
    /// Deadline of each downstream call (`CHATBOT_DOWNSTREAM_TIMEOUT_MS`, 3000).
    pub downstream_timeout: Duration,
    /// Deadline of a whole chat request, a streamed answer included
    /// (`CHATBOT_REQUEST_TIMEOUT_MS`, 60000): past it the caller gets 504 `deadline_exceeded`.
    pub request_timeout: Duration,
    /// Largest fraud or recommendation reply read (`CHATBOT_DOWNSTREAM_MAX_BODY_BYTES`, 1 MiB);
    /// a larger one is an invalid reply.
    pub downstream_max_body_bytes: usize,
    /// Whom the chatbot, the public edge, trusts with baggage identity and trace sampling: peers
    /// in `CHATBOT_TRUSTED_CALLERS` (networks or addresses) and callers that send the shared
    /// secret `CHATBOT_GATEWAY_TOKEN` in `x-shopmax-gateway-token`; nobody by default.
    pub edge: telemetry::EdgeTrust,
    /// Products put in the prompt (`CHATBOT_TOP_K`, 3).
    pub top_k: usize,
    /// Longest answer in tokens (`CHATBOT_MAX_ANSWER_TOKENS`, 256).
    pub max_answer_tokens: u32,
    /// Baggage `shopmax.channel` when the caller sent none (`CHATBOT_CHANNEL`, `web`).
    pub channel: String,
    /// Answer when the fraud service is down (`CHATBOT_FRAUD_FAIL_OPEN`, true): questions are
    /// read-only, so refusing every customer during a fraud outage costs more than it saves.
    pub fraud_fail_open: bool,
    /// The LLM client's settings (`LLM_*`).
    pub llm: LlmConfig,
    /// The trace UI the chat page links each answer to, `{trace_id}` standing for the id
    /// (`CHATBOT_TRACE_UI_URL`, `http://localhost:16686/trace/{trace_id}`, Jaeger; `none`: no
    /// link, the id alone).
    pub trace_ui_url: String,
    /// Where the chat page's spans are relayed, an OTLP/HTTP traces endpoint
    /// (`CHATBOT_BROWSER_TRACES_URL`, `http://localhost:4318/v1/traces`; `none`: not collected).
    pub browser_traces_url: Option<reqwest::Url>,
}

impl FromEnv for Config {
    /// Reads every variable; a malformed or out-of-range value is recorded, so the service
    /// never starts on a typo.
    fn read(env: &mut Reader<'_>) -> Self {
        let port = env.parse_or("PORT", 8080);
        let fraud_url = env.http_url_or("FRAUD_URL", "http://localhost:8082");
        let recommendation_url = env.http_url_or("RECOMMENDATION_URL", "http://localhost:8081");
        let downstream_timeout = env.positive_millis_or("CHATBOT_DOWNSTREAM_TIMEOUT_MS", 3000);
        let request_timeout = env.positive_millis_or("CHATBOT_REQUEST_TIMEOUT_MS", 60_000);
        let downstream_max_body_bytes =
            env.positive_or("CHATBOT_DOWNSTREAM_MAX_BODY_BYTES", 1024 * 1024);
        let trusted_callers = telemetry::read_networks(env, "CHATBOT_TRUSTED_CALLERS");
        let gateway_token = env
            .get("CHATBOT_GATEWAY_TOKEN")
            .map(telemetry::SharedSecret::new);
        if gateway_token.as_ref().is_some_and(|t| t.len() < 16) {
            env.reject(
                "CHATBOT_GATEWAY_TOKEN",
                "shorter than 16 characters: too easy to guess",
                None,
            );
        }
        let top_k = env.range_or("CHATBOT_TOP_K", 3, 1..=contract::recommendation::MAX_TOP_K);
        // Zero would fail every request: the model could not say anything.
        let max_answer_tokens = env.positive_or("CHATBOT_MAX_ANSWER_TOKENS", 256);
        let channel = env.string_or("CHATBOT_CHANNEL", "web");
        let fraud_fail_open = env.bool_or("CHATBOT_FRAUD_FAIL_OPEN", true);
        let llm = LlmConfig::read(env);
        let trace_ui_url = match env.string_or(
            "CHATBOT_TRACE_UI_URL",
            "http://localhost:16686/trace/{trace_id}",
        ) {
            off if off.eq_ignore_ascii_case("none") => String::new(),
            url => url,
        };
        let browser_traces_url = match env.get("CHATBOT_BROWSER_TRACES_URL") {
            Some(off) if off.eq_ignore_ascii_case("none") => None,
            _ => {
                let url = env.http_url_or(
                    "CHATBOT_BROWSER_TRACES_URL",
                    "http://localhost:4318/v1/traces",
                );
                reqwest::Url::parse(&url).ok()
            }
        };
        Self {
            port,
            fraud_url,
            recommendation_url,
            downstream_timeout,
            request_timeout,
            downstream_max_body_bytes,
            edge: telemetry::EdgeTrust {
                callers: trusted_callers,
                token: gateway_token,
            },
            top_k,
            max_answer_tokens,
            channel,
            fraud_fail_open,
            llm,
            trace_ui_url,
            browser_traces_url,
        }
    }
}
