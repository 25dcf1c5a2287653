//! `shopmax`: from a fresh clone to a trace you can read, in the terminal.
//!
//! - `shopmax up` runs the four services as child processes with a built-in OTLP receiver;
//! - `shopmax ask "…"` asks the chatbot and prints the answer, then its trace as a waterfall;
//! - `shopmax trace ID` prints any trace the same way, from the built-in receiver, Jaeger or
//!   Tempo;
//! - `shopmax load` generates realistic traffic, open or closed loop, and reports latency
//!   percentiles, statuses and the slowest traces;
//! - `shopmax smoke` checks a running `docker compose up` end to end.
//!
//! # Layout
//! - `main.rs`: the command line (clap), output and exit codes.
//! - [`up`]: the child processes and the built-in receiver; [`store`]: the receiver's bounded
//!   memory of recent traces and its query API (Tempo's shape).
//! - [`ask`]: one question, JSON or streamed.
//! - [`fetch`]: reading a trace from the built-in receiver, Tempo or Jaeger, and waiting for
//!   all of it; [`trace`]: the span model and the two JSON shapes it is read from.
//! - [`waterfall`]: the rendering.
//! - [`load`]: the load generator; [`smoke`]: the Compose smoke test.

pub mod ask;
pub mod fetch;
pub mod load;
pub mod smoke;
pub mod store;
pub mod trace;
pub mod up;
pub mod waterfall;
