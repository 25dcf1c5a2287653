//! Customer and session identifiers. Both travel in baggage and become span attributes that
//! Jaeger is searched by, so they are restricted to a small, header-safe alphabet:
//! ASCII letters, digits, `_`, `.`, `:` and `-`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be 1 to {max} characters of A-Z, a-z, 0-9, '_', '.', ':' or '-'")]
pub struct IdError {
    /// The field, e.g. `customer_id`.
    pub field: &'static str,
    /// The longest allowed length.
    pub max: usize,
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

fn check(value: &str, field: &'static str, max: usize) -> Result<(), IdError> {
    // Ids are ASCII by rule, so bytes are characters here.
    if value.is_empty() || value.len() > max || !value.chars().all(is_id_char) {
        return Err(IdError { field, max });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The longest valid id.
            pub const MAX_LEN: usize = $max;

            /// Validates `value`.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check(&value, $field, $max)?;
                Ok(Self(value))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A customer: 1 to 64 id characters. Requests without a known customer carry
    /// [`CustomerId::anonymous`].
    CustomerId,
    "customer_id",
    64
);

id_type!(
    /// A chat session (a conversation): 1 to 128 id characters.
    SessionId,
    "session_id",
    128
);

impl CustomerId {
    /// The id the chatbot sends when the customer is unknown.
    pub const ANONYMOUS: &'static str = "anonymous";

    /// The unknown customer.
    pub fn anonymous() -> Self {
        Self(Self::ANONYMOUS.to_owned())
    }

    /// Whether this is the unknown customer.
    pub fn is_anonymous(&self) -> bool {
        self.0 == Self::ANONYMOUS
    }
}

impl SessionId {
    /// A session id from 64 random bits, `sess-` and 16 hex digits (what the chatbot assigns
    /// when the client keeps no session).
    pub fn from_random(bits: u64) -> Self {
        Self(format!("sess-{bits:016x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("cust-42", true)]
    #[case("a:b.c_d-e", true)]
    #[case("", false)]
    #[case("has space", false)]
    #[case("ünïcode", false)]
    #[case("s/1", false)]
    fn ids_are_checked(#[case] id: &str, #[case] ok: bool) {
        assert_eq!(CustomerId::parse(id).is_ok(), ok);
        assert_eq!(SessionId::parse(id).is_ok(), ok);
    }

    #[test]
    fn lengths_are_bounded_per_kind() {
        assert!(CustomerId::parse("a".repeat(64)).is_ok());
        assert!(CustomerId::parse("a".repeat(65)).is_err());
        assert!(SessionId::parse("s".repeat(128)).is_ok());
        assert!(SessionId::parse("s".repeat(129)).is_err());
    }

    #[test]
    fn deserialising_an_invalid_id_fails_with_the_field_name() {
        let error = serde_json::from_str::<CustomerId>("\"a b\"").expect_err("invalid");
        assert!(error.to_string().contains("customer_id"), "{error}");
        let id: SessionId = serde_json::from_str("\"sess-1\"").expect("valid");
        assert_eq!(serde_json::to_string(&id).expect("json"), "\"sess-1\"");
    }

    #[test]
    fn random_session_ids_are_valid() {
        assert!(SessionId::parse(SessionId::from_random(u64::MAX).as_str()).is_ok());
        assert!(CustomerId::anonymous().is_anonymous());
    }
}
