//! Entry point (being written).

fn main() {}
