//! The resource every signal carries: who emitted it, which version, where.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

use crate::config::{ServiceInfo, TelemetryConfig};

/// `service.namespace` of every ShopMax service.
pub(crate) const SERVICE_NAMESPACE: &str = "shopmax";

/// Builds the resource. Precedence, lowest first: our defaults, `OTEL_RESOURCE_ATTRIBUTES`,
/// `OTEL_SERVICE_NAME` (the spec gives the dedicated variable the last word).
pub(crate) fn build(service: &ServiceInfo, config: &TelemetryConfig) -> Resource {
    let mut attrs: Vec<KeyValue> = vec![
        KeyValue::new("service.version", service.version),
        KeyValue::new("service.namespace", SERVICE_NAMESPACE),
        KeyValue::new("service.instance.id", instance_id()),
        KeyValue::new("deployment.environment.name", "development"),
        KeyValue::new("geo.locality.name", service.site),
        KeyValue::new("process.pid", i64::from(std::process::id())),
        KeyValue::new("process.runtime.name", "rustc"),
    ];
    for (key, value) in &config.resource_attributes {
        attrs.retain(|kv| kv.key.as_str() != key);
        attrs.push(KeyValue::new(key.clone(), value.clone()));
    }
    attrs.retain(|kv| kv.key.as_str() != "service.name");
    Resource::builder_empty()
        .with_detector(Box::new(
            opentelemetry_sdk::resource::TelemetryResourceDetector,
        ))
        .with_attributes(attrs)
        .with_service_name(config.service_name.clone())
        .build()
}

/// A random UUIDv4-shaped id: one process, one instance, as the semantic conventions suggest.
fn instance_id() -> String {
    use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
    let bytes = RandomIdGenerator::default().new_trace_id().to_bytes();
    let mut b = bytes;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_attributes_override_defaults_and_service_name_wins() {
        let svc = ServiceInfo {
            name: "fraud",
            version: "0.9.0",
            site: "Hyderabad",
        };
        let vars = [
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=staging,service.name=ignored",
            ),
            ("OTEL_SERVICE_NAME", "fraud-canary"),
        ];
        let config = TelemetryConfig::from_lookup(&svc, |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        });
        let r = build(&svc, &config);
        let get = |k: &str| {
            r.get(&opentelemetry::Key::from(k.to_owned()))
                .map(|v| v.to_string())
        };
        assert_eq!(get("service.name").as_deref(), Some("fraud-canary"));
        assert_eq!(get("service.version").as_deref(), Some("0.9.0"));
        assert_eq!(get("service.namespace").as_deref(), Some("shopmax"));
        assert_eq!(
            get("deployment.environment.name").as_deref(),
            Some("staging")
        );
        assert_eq!(get("geo.locality.name").as_deref(), Some("Hyderabad"));
        assert_eq!(get("telemetry.sdk.language").as_deref(), Some("rust"));
        assert_eq!(get("service.instance.id").map(|s| s.len()), Some(36));
    }
}
