#!/usr/bin/env bash
# Starts the whole ShopMax system on localhost without Docker: the mock LLM, fraud,
# recommendation and chatbot, each its own process as in production. Ctrl-C stops them all.
#
# Telemetry goes to OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4317, a Collector or
# Jaeger if you run one). With nothing listening there, requests are unaffected and the failed
# exports are counted and logged. OTEL_TRACES_EXPORTER=console prints spans instead.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE="${PROFILE:-release}"
echo "building ($PROFILE)..."
cargo build --locked --profile "$PROFILE" -p mock-llm -p fraud -p recommendation -p chatbot
BIN="target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")"

export OTEL_EXPORTER_OTLP_ENDPOINT="${OTEL_EXPORTER_OTLP_ENDPOINT:-http://localhost:4317}"
export OTEL_RESOURCE_ATTRIBUTES="${OTEL_RESOURCE_ATTRIBUTES:-deployment.environment.name=local}"
# Our services are internal (they get baggage); the LLM on 8090 plays an external provider.
export TELEMETRY_INTERNAL_HOSTS="localhost:8080,localhost:8081,localhost:8082"
# The exporter's own per-batch warnings are left out; telemetry.spans.export_failed reports them.
export RUST_LOG="${RUST_LOG:-info,opentelemetry_sdk=off,opentelemetry-otlp=off}"
export LLM_BASE_URL="${LLM_BASE_URL:-http://localhost:8090/v1}"

pids=()
stop() {
    local code=${1:-0}
    trap - INT TERM EXIT
    echo "stopping..."
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    exit "$code"
}
trap 'stop 0' INT TERM
trap 'stop $?' EXIT

start() {
    local name=$1
    shift
    # Process substitution, not a pipe: $! must be the service itself, not the prefixing sed.
    env "$@" "$BIN/$name" > >(sed -u "s/^/[$name] /") 2>&1 &
    pids+=("$!")
}

wait_ready() {
    local name=$1 url=$2
    for _ in $(seq 1 150); do
        if python3 -c "import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "$name did not become ready at $url" >&2
    exit 1
}

start mock-llm MOCK_LLM_PORT=8090
wait_ready mock-llm http://localhost:8090/readyz
start fraud PORT=8082 FAULT_ADMIN=true
start recommendation PORT=8081 FAULT_ADMIN=true
start chatbot PORT=8080 FRAUD_URL=http://localhost:8082 RECOMMENDATION_URL=http://localhost:8081
wait_ready fraud http://localhost:8082/readyz
wait_ready recommendation http://localhost:8081/readyz
wait_ready chatbot http://localhost:8080/readyz

cat <<'MSG'

ShopMax is up: chatbot :8080, recommendation :8081, fraud :8082, mock LLM :8090.

  curl -s localhost:8080/v1/chat -H 'content-type: application/json' \
    -d '{"question": "What is the price of Samsung 65 QLED?", "customer_id": "cust-42"}'

  curl -s localhost:8080/v1/chat -H 'content-type: application/json' \
    -d '{"question": "Does OnePlus 11 support 5G?", "customer_id": "cust-42"}'

  curl -sN localhost:8080/v1/chat -H 'content-type: application/json' \
    -d '{"question": "Does OnePlus 11 support 5G?", "stream": true}'

Each reply carries its trace_id (and a traceresponse header). Ctrl-C stops everything.
MSG
# If any service exits, stop the rest rather than leave a half-running system.
wait -n || true
echo "a service exited; stopping the rest" >&2
stop 1
