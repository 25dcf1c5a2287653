//! `shopmax smoke`: checks a running `docker compose up` end to end, one line per check.
//!
//! 1. every UI and API the Compose file publishes answers its health probe;
//! 2. both of the seed article's questions get their answers;
//! 3. each of their traces is whole in Jaeger and in Tempo: the chatbot, fraud and
//!    recommendation, the LLM span with its token counts, one root;
//! 4. Prometheus has the span metrics and the GenAI metrics;
//! 5. every Grafana data source reports healthy.
//!
//! The questions go with the User-Agent `shopmax-smoke/…`, which the Collector's tail sampling
//! keeps (policy `smoke`), so their traces reach the backends whatever the sampling percentage.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fetch::{Source, looks_complete, wait_for_trace};
use crate::trace::Trace;

/// The User-Agent of the smoke test's questions.
pub const USER_AGENT: &str = concat!("shopmax-smoke/", env!("CARGO_PKG_VERSION"));

/// Where the Compose stack answers.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The chatbot.
    pub chatbot: String,
    /// Jaeger's UI and query API.
    pub jaeger: String,
    /// Tempo's HTTP API.
    pub tempo: String,
    /// Prometheus.
    pub prometheus: String,
    /// Grafana.
    pub grafana: String,
    /// Loki.
    pub loki: String,
    /// Grafana's admin login (listing data sources needs it).
    pub grafana_user: String,
    /// Its password.
    pub grafana_password: String,
    /// How long to wait for the stack, and for each trace (tail sampling decides after 65 s).
    pub patience: Duration,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// `None` when it passed; else what failed.
    pub failure: Option<String>,
}

impl Check {
    fn pass(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            failure: None,
        }
    }

    fn fail(name: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            failure: Some(why.into()),
        }
    }
}

/// The seed article's questions and what their answers must say.
pub const QUESTIONS: [(&str, &[&str]); 2] = [
    (
        "What is the price of Samsung 65 QLED?",
        &["Samsung 65 QLED", "Rs 85000", "Mumbai"],
    ),
    (
        "Does OnePlus 11 support 5G?",
        &["OnePlus 11 5G", "Bangalore"],
    ),
];

/// Whether a trace is whole: one root, spans of the chatbot, fraud and recommendation, and an
/// LLM chat span with its token counts. `Err` says what is missing.
pub fn whole(trace: &Trace) -> Result<(), String> {
    let roots = trace.roots();
    if roots.len() != 1 {
        return Err(format!("{} roots", roots.len()));
    }
    if !looks_complete(trace, Some("POST /v1/chat")) {
        return Err(format!(
            "the root is {:?}, not the chatbot's POST /v1/chat",
            roots[0].name
        ));
    }
    let services = trace.services();
    for service in ["chatbot", "fraud", "recommendation"] {
        if !services.contains(&service) {
            return Err(format!(
                "no span of {service} (services: {})",
                services.join(", ")
            ));
        }
    }
    let llm = trace
        .spans
        .iter()
        .find(|s| s.attr("gen_ai.operation.name") == Some("chat"))
        .ok_or("no LLM chat span")?;
    for key in ["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"] {
        if llm.attr(key).is_none() {
            return Err(format!("the LLM span has no {key}"));
        }
    }
    Ok(())
}

async fn healthy(client: &reqwest::Client, url: &str, deadline: Instant) -> Result<(), String> {
    let mut last = String::new();
    while Instant::now() < deadline {
        match client.get(url).timeout(Duration::from_secs(3)).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => last = crate::fetch::root_cause(&e),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Err(last)
}

/// Runs every check, calling `report` with each as it finishes; all of them.
pub async fn run(endpoints: &Endpoints, mut report: impl FnMut(&Check)) -> Vec<Check> {
    let client = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .build()
        .unwrap_or_default();
    let mut checks = Vec::new();
    let mut record = |check: Check| {
        report(&check);
        checks.push(check);
    };

    // 1. Health.
    let deadline = Instant::now() + endpoints.patience;
    let mut any_up = false;
    for (name, url) in [
        ("chatbot ready", format!("{}/readyz", endpoints.chatbot)),
        ("Jaeger up", format!("{}/api/services", endpoints.jaeger)),
        ("Tempo ready", format!("{}/ready", endpoints.tempo)),
        ("Loki ready", format!("{}/ready", endpoints.loki)),
        (
            "Prometheus ready",
            format!("{}/-/ready", endpoints.prometheus),
        ),
        (
            "Grafana healthy",
            format!("{}/api/health", endpoints.grafana),
        ),
    ] {
        record(match healthy(&client, &url, deadline).await {
            Ok(()) => {
                any_up = true;
                Check::pass(name)
            }
            Err(why) => Check::fail(name, format!("{url}: {why}")),
        });
    }

    // Nothing answers: the stack is not up, and the rest would only wait.
    if !any_up {
        return checks;
    }

    // 2. The seed questions.
    let mut traces = Vec::new();
    for (question, expected) in QUESTIONS {
        let name = format!("answer to {question:?}");
        let reply = client
            .post(format!("{}/v1/chat", endpoints.chatbot))
            .json(&serde_json::json!({ "question": question }))
            .timeout(Duration::from_secs(60))
            .send()
            .await;
        let body: Value = match reply {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
            Ok(r) => {
                record(Check::fail(name, format!("HTTP {}", r.status())));
                continue;
            }
            Err(e) => {
                record(Check::fail(name, crate::fetch::root_cause(&e)));
                continue;
            }
        };
        let answer = body["answer"].as_str().unwrap_or_default();
        match expected.iter().find(|part| !answer.contains(*part)) {
            Some(missing) => record(Check::fail(name, format!("no {missing:?} in {answer:?}"))),
            None => record(Check::pass(name)),
        }
        if let Some(id) = body["trace_id"].as_str() {
            traces.push(id.to_owned());
        }
    }

    // 3. The traces, whole in both backends.
    for trace_id in &traces {
        for source in [
            Source::Jaeger(endpoints.jaeger.clone()),
            Source::Tempo(endpoints.tempo.clone()),
        ] {
            let name = format!("trace {trace_id} whole in {}", source.describe());
            let result = wait_for_trace(
                &client,
                &source,
                trace_id,
                Some("POST /v1/chat"),
                endpoints.patience,
            )
            .await;
            record(match result {
                Ok((trace, _)) => match whole(&trace) {
                    Ok(()) => Check::pass(name),
                    Err(why) => Check::fail(name, why),
                },
                Err(e) => Check::fail(name, e.to_string()),
            });
        }
    }

    // 4. Metrics.
    for metric in [
        "traces_span_metrics_calls_total",
        "traces_span_metrics_duration_milliseconds_bucket",
        "gen_ai_client_token_usage_sum",
        "gen_ai_client_operation_duration_seconds_count",
    ] {
        let name = format!("Prometheus has {metric}");
        let deadline = Instant::now() + endpoints.patience;
        let mut outcome = Err("no series".to_owned());
        while Instant::now() < deadline {
            let answer = client
                // The metric names are plain identifiers: no encoding needed.
                .get(format!(
                    "{}/api/v1/query?query={metric}",
                    endpoints.prometheus
                ))
                .send()
                .await;
            outcome = match answer {
                Ok(r) => match r.json::<Value>().await {
                    Ok(json)
                        if json
                            .pointer("/data/result")
                            .and_then(Value::as_array)
                            .is_some_and(|r| !r.is_empty()) =>
                    {
                        Ok(())
                    }
                    Ok(_) => Err("no series".to_owned()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(crate::fetch::root_cause(&e)),
            };
            if outcome.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        record(match outcome {
            Ok(()) => Check::pass(name),
            Err(why) => Check::fail(name, why),
        });
    }

    // 5. Grafana's data sources.
    let listed = client
        .get(format!("{}/api/datasources", endpoints.grafana))
        .basic_auth(&endpoints.grafana_user, Some(&endpoints.grafana_password))
        .send()
        .await;
    let sources: Vec<Value> = match listed {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
        Ok(r) => {
            record(Check::fail(
                "Grafana data sources listed",
                format!(
                    "HTTP {} (the admin login: --grafana-password, GRAFANA_ADMIN_PASSWORD)",
                    r.status()
                ),
            ));
            Vec::new()
        }
        Err(e) => {
            record(Check::fail(
                "Grafana data sources listed",
                crate::fetch::root_cause(&e),
            ));
            Vec::new()
        }
    };
    for source in sources {
        let uid = source["uid"].as_str().unwrap_or_default().to_owned();
        let name = format!(
            "Grafana data source {} healthy",
            source["name"].as_str().unwrap_or(&uid)
        );
        let health = client
            .get(format!(
                "{}/api/datasources/uid/{uid}/health",
                endpoints.grafana
            ))
            .basic_auth(&endpoints.grafana_user, Some(&endpoints.grafana_password))
            .send()
            .await;
        record(match health {
            Ok(r) => {
                let status = r.status();
                let json: Value = r.json().await.unwrap_or(Value::Null);
                if status.is_success() && json["status"] == "OK" {
                    Check::pass(name)
                } else {
                    Check::fail(
                        name,
                        format!("HTTP {status}: {}", json["message"].as_str().unwrap_or("")),
                    )
                }
            }
            Err(e) => Check::fail(name, crate::fetch::root_cause(&e)),
        });
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Kind, SpanRecord};

    fn span(
        id: &str,
        parent: &str,
        service: &str,
        name: &str,
        attrs: &[(&str, &str)],
    ) -> SpanRecord {
        SpanRecord {
            span_id: id.into(),
            parent_id: parent.into(),
            service: service.into(),
            name: name.into(),
            kind: Kind::Internal,
            start_ns: 0,
            end_ns: 1,
            error: false,
            attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn trace(spans: Vec<SpanRecord>) -> Trace {
        Trace {
            trace_id: "t".into(),
            spans,
        }
    }

    #[test]
    fn a_whole_trace_has_every_service_and_the_llm_tokens_under_one_root() {
        let llm = [
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.usage.input_tokens", "286"),
            ("gen_ai.usage.output_tokens", "21"),
        ];
        let good = vec![
            span("1", "", "chatbot", "POST /v1/chat", &[]),
            span("2", "1", "fraud", "POST /v1/score", &[]),
            span("3", "1", "recommendation", "POST /v1/recommend", &[]),
            span("4", "1", "chatbot", "chat gpt-4o-mini", &llm),
        ];
        assert_eq!(whole(&trace(good.clone())), Ok(()));

        let mut no_fraud = good.clone();
        no_fraud.remove(1);
        assert!(whole(&trace(no_fraud)).is_err_and(|e| e.contains("fraud")));

        let mut orphan = good.clone();
        orphan[2].parent_id = "missing".into();
        assert!(whole(&trace(orphan)).is_err_and(|e| e.contains("2 roots")));

        let mut no_tokens = good;
        no_tokens[3].attributes.remove("gen_ai.usage.output_tokens");
        assert!(whole(&trace(no_tokens)).is_err_and(|e| e.contains("output_tokens")));
    }
}
