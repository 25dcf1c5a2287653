//! Every OpenTelemetry GenAI semantic-convention name this crate records, in one place, because
//! the GenAI conventions are still in development and names move between releases.
