//! Who is asking: the session and customer a request is scored and traced as, and the baggage
//! that carries them to every downstream span.
//!
//! The chatbot is the public edge, and baggage is a header anyone can send. OpenTelemetry's
//! guidance is not to trust baggage from outside the trust boundary, so whose baggage counts is
//! explicit ([`Trust`]): a trusted caller (a gateway in front of us, recognised by its network
//! address in `CHATBOT_TRUSTED_CALLERS` or by the shared secret `CHATBOT_GATEWAY_TOKEN`, never by
//! a header anyone can send) keeps its baggage, identity included. Anyone else, our own web page
//! as much as curl, gets no identity from baggage: the customer comes from the request body, a
//! baggage `session.id` is at most a hint when the body names no session, and the rest of the
//! caller's baggage is dropped rather than forwarded to our services.

use contract::chat::ChatRequest;
use contract::{CustomerId, SessionId};
use opentelemetry::baggage::{BaggageExt as _, KeyValueMetadata};

/// Whether the caller's baggage is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trust {
    /// A trusted gateway: its baggage, identity included, is kept.
    Trusted,
    /// Anyone else: identity from the body only; a baggage session id is a hint.
    Untrusted,
}

/// The identity a request runs as.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) session_id: SessionId,
    pub(crate) customer_id: CustomerId,
}

/// A session id for a client that keeps none: 64 random bits, unique, not secret.
pub(crate) fn new_session_id() -> SessionId {
    SessionId::from_random(rand::random())
}

/// Settles the identity under `trust` (see the module docs), puts session.id, user.id and
/// shopmax.channel first in the baggage, and returns the context the rest of the request runs in.
pub(crate) fn with_identity(
    cx: &opentelemetry::Context,
    request: &ChatRequest,
    channel: &str,
    trust: Trust,
) -> (opentelemetry::Context, Identity) {
    let incoming = cx.baggage();
    let from_baggage = |key: &str| incoming.get(key).map(|v| v.as_str().to_owned());
    let baggage_session = || from_baggage("session.id").and_then(|v| SessionId::parse(v).ok());
    let (session_id, customer_id, channel) = match trust {
        Trust::Trusted => (
            baggage_session()
                .or_else(|| request.session_id.clone())
                .unwrap_or_else(new_session_id),
            from_baggage("user.id")
                .and_then(|v| CustomerId::parse(v).ok())
                .or_else(|| request.customer_id.clone())
                .unwrap_or_else(CustomerId::anonymous),
            from_baggage("shopmax.channel").unwrap_or_else(|| channel.to_owned()),
        ),
        Trust::Untrusted => (
            request
                .session_id
                .clone()
                .or_else(baggage_session)
                .unwrap_or_else(new_session_id),
            request
                .customer_id
                .clone()
                .unwrap_or_else(CustomerId::anonymous),
            channel.to_owned(),
        ),
    };
    // The identity goes first: baggage holds at most 64 members and 8192 bytes, and a caller
    // that filled it must not push out the keys our traces are searched by. A caller's invalid
    // value is replaced, so every span names the identity the request was actually scored as.
    let identity_members = [
        ("session.id", session_id.to_string()),
        ("user.id", customer_id.to_string()),
        ("shopmax.channel", channel),
    ];
    let mut baggage: Vec<KeyValueMetadata> = identity_members
        .iter()
        .map(|(k, v)| KeyValueMetadata::new(*k, v.clone(), ""))
        .collect();
    if trust == Trust::Trusted {
        baggage.extend(
            incoming
                .iter()
                .filter(|(k, _)| !identity_members.iter().any(|(key, _)| k.as_str() == *key))
                .map(|(k, (v, meta))| KeyValueMetadata::new(k.clone(), v.clone(), meta.clone())),
        );
    }
    (
        cx.with_baggage(baggage),
        Identity {
            session_id,
            customer_id,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(customer_id: Option<&str>, session_id: Option<&str>) -> ChatRequest {
        ChatRequest {
            question: "q".into(),
            customer_id: customer_id.map(|c| CustomerId::parse(c).expect("valid")),
            session_id: session_id.map(|s| SessionId::parse(s).expect("valid")),
            stream: false,
        }
    }

    #[test]
    fn caller_baggage_is_kept_and_missing_keys_added() {
        let cx = opentelemetry::Context::new().with_baggage([
            opentelemetry::KeyValue::new("session.id", "from-caller"),
            opentelemetry::KeyValue::new("other", "x"),
        ]);
        let (cx, identity) = with_identity(
            &cx,
            &request(Some("cust-1"), Some("from-body")),
            "web",
            Trust::Trusted,
        );
        let b = cx.baggage();
        let get = |k: &str| b.get(k).map(|v| v.as_str().to_owned());
        assert_eq!(get("session.id").as_deref(), Some("from-caller"));
        assert_eq!(get("user.id").as_deref(), Some("cust-1"));
        assert_eq!(get("shopmax.channel").as_deref(), Some("web"));
        assert_eq!(get("other").as_deref(), Some("x"));
        assert_eq!(identity.session_id.as_str(), "from-caller");
        assert_eq!(identity.customer_id.as_str(), "cust-1");
    }

    #[test]
    fn identity_survives_a_full_caller_baggage_and_invalid_values_are_replaced() {
        let mut members: Vec<opentelemetry::KeyValue> = (0..63)
            .map(|i| opentelemetry::KeyValue::new(format!("k{i}"), "v"))
            .collect();
        members.push(opentelemetry::KeyValue::new("user.id", "bad value"));
        let cx = opentelemetry::Context::new().with_baggage(members);
        let (cx, identity) =
            with_identity(&cx, &request(Some("cust-9"), None), "web", Trust::Trusted);
        let b = cx.baggage();
        let get = |k: &str| b.get(k).map(|v| v.as_str().to_owned());
        assert_eq!(identity.customer_id.as_str(), "cust-9");
        assert_eq!(
            get("user.id").as_deref(),
            Some("cust-9"),
            "the scored identity wins"
        );
        assert_eq!(get("session.id"), Some(identity.session_id.to_string()));
        assert_eq!(get("shopmax.channel").as_deref(), Some("web"));
        assert_eq!(b.len(), 64, "caller members beyond the limit give way");
    }

    #[test]
    fn an_untrusted_callers_baggage_carries_no_identity_and_is_not_forwarded() {
        let cx = opentelemetry::Context::new().with_baggage([
            opentelemetry::KeyValue::new("user.id", "someone-else"),
            opentelemetry::KeyValue::new("session.id", "sess-hint"),
            opentelemetry::KeyValue::new("shopmax.channel", "partner-api"),
            opentelemetry::KeyValue::new("other", "x"),
        ]);
        let (cx, identity) = with_identity(&cx, &request(None, None), "web", Trust::Untrusted);
        let b = cx.baggage();
        let get = |k: &str| b.get(k).map(|v| v.as_str().to_owned());
        assert_eq!(identity.customer_id, CustomerId::anonymous());
        assert_eq!(get("user.id").as_deref(), Some(CustomerId::ANONYMOUS));
        assert_eq!(
            identity.session_id.as_str(),
            "sess-hint",
            "a session hint is taken"
        );
        assert_eq!(get("shopmax.channel").as_deref(), Some("web"));
        assert_eq!(get("other"), None, "untrusted members are not forwarded");
        assert_eq!(b.len(), 3);

        // The body's identity is used, and its session wins over the hint.
        let (_, identity) = with_identity(
            &cx_with_user("someone-else"),
            &request(Some("cust-1"), Some("sess-body")),
            "web",
            Trust::Untrusted,
        );
        assert_eq!(identity.customer_id.as_str(), "cust-1");
        assert_eq!(identity.session_id.as_str(), "sess-body");
    }

    fn cx_with_user(user: &str) -> opentelemetry::Context {
        opentelemetry::Context::new().with_baggage([
            opentelemetry::KeyValue::new("user.id", user.to_owned()),
            opentelemetry::KeyValue::new("session.id", "sess-hint"),
        ])
    }

    #[test]
    fn session_ids_are_assigned_and_distinct() {
        let a = new_session_id();
        let b = new_session_id();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("sess-"));
    }
}
