#!/usr/bin/env bash
# ShopMax on localhost without Docker: builds the binaries, then runs `shopmax up` (the mock LLM,
# fraud, recommendation and the chatbot, each its own process, with a built-in OTLP receiver that
# `shopmax ask` and `shopmax trace` read). Arguments go to `shopmax up` (see `shopmax up --help`).
#
#   ./deploy/run-local.sh                   # then, in another terminal:
#   target/release/shopmax ask "What is the price of Samsung 65 QLED?"
#
# With OTEL_EXPORTER_OTLP_ENDPOINT set, the services export there instead (a Collector, Jaeger).
# PROFILE=dev builds the debug binaries (faster to build, slower to run).
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE="${PROFILE:-release}"
echo "building ($PROFILE)..."
cargo build --locked --profile "$PROFILE" --bins
# Where cargo put them: CARGO_TARGET_DIR when set, as cargo itself does.
BIN="${CARGO_TARGET_DIR:-target}/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")"
exec "$BIN/shopmax" up "$@"
