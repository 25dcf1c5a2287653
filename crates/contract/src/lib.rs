//! The wire types between the ShopMax services. The caller and the callee of every call
//! serialise the same Rust types, so a change to one side of a contract that the other side does
//! not follow fails to compile instead of failing in an end-to-end test (or in production).
//!
//! Closed sets are enums (`Decision`, `Rule`, `Degradation`), and identifiers validate
//! themselves when they are parsed or deserialised, so no handler can forget the check.
//!
//! # Layout
//! - [`ids`]: [`CustomerId`] and [`SessionId`], and the one rule for what an id may contain.
//! - [`fraud`]: `POST /v1/score` of the fraud service.
//! - [`recommendation`]: `POST /v1/recommend` of the recommendation service.
//! - [`cost`]: [`Cost`] and [`Spend`], what the LLM calls behind an answer cost.
//! - [`chat`]: `POST /v1/chat` of the chatbot, the public API (JSON reply and stream events).

pub mod chat;
pub mod cost;
pub mod fraud;
pub mod ids;
pub mod recommendation;

pub use cost::{Cost, Spend};
pub use ids::{CustomerId, IdError, SessionId};
