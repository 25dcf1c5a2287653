#!/usr/bin/env bash
# Instructions per request of one ShopMax service, counted by valgrind's callgrind: repeatable
# where timings drift, so a change to the telemetry path can be judged on one run.
#
#   crates/loadbench/callgrind.sh traced|untraced chatbot|fraud|recommendation [REQUESTS]
#
# Needs the release binaries (cargo build --release -p loadbench -p chatbot -p fraud
# -p recommendation) and valgrind. It starts `loadbench stubs` (the zero-latency LLM stub and the
# counting OTLP receiver), the three services on 127.0.0.1:18080-18082 with the named one under
# callgrind, sends 50 unmeasured requests, zeroes the counters, sends REQUESTS (default 200) one at
# a time, waits for the last span batch to export, and dumps. It prints the instructions per
# request and leaves the profile in target/callgrind/ for callgrind_annotate. Variables in EXTRA_ENV
# (space-separated NAME=value) are passed to the three services, to compare settings; with
# PROTOCOL=http/protobuf the traced services export to the receiver over OTLP/HTTP instead.
set -euo pipefail

mode=${1:?traced or untraced}
service=${2:?chatbot, fraud or recommendation}
requests=${3:-200}
case $mode in traced | untraced) ;; *) echo "mode: traced or untraced" >&2; exit 2 ;; esac
case $service in chatbot | fraud | recommendation) ;; *) echo "unknown service $service" >&2; exit 2 ;; esac
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/target/release
out=$root/target/callgrind
mkdir -p "$out"
profile=$out/$mode-$service.out
rm -f "$profile" "$profile".*

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

"$bin/loadbench" stubs >"$out/stubs.env" 2>/dev/null &
pids+=($!)
for _ in $(seq 50); do [ -s "$out/stubs.env" ] && [ "$(wc -l <"$out/stubs.env")" -ge 3 ] && break; sleep 0.1; done
llm=$(sed -n 's/^LLM_BASE_URL=//p' "$out/stubs.env")
collector=$(sed -n 's/^OTEL_EXPORTER_OTLP_ENDPOINT=//p' "$out/stubs.env")
if [ "${PROTOCOL:-grpc}" = http/protobuf ]; then
  collector="$(sed -n 's/^OTLP_HTTP_ENDPOINT=//p' "$out/stubs.env") OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
fi

env_of() {
  echo "PATH=$PATH" "LLM_BASE_URL=$llm" ${EXTRA_ENV:-}
  if [ "$mode" = untraced ]; then
    echo OTEL_SDK_DISABLED=true
  else
    # A short schedule delay so the last partial batch leaves before the dump.
    echo "OTEL_EXPORTER_OTLP_ENDPOINT=$collector" OTEL_BSP_SCHEDULE_DELAY=500
  fi
}
start() {
  local name=$1
  shift
  if [ "$name" = "$service" ]; then
    env -i $(env_of) "$@" valgrind --tool=callgrind --callgrind-out-file="$profile" \
      "$bin/$name" 2>"$out/$name.log" &
  else
    env -i $(env_of) "$@" "$bin/$name" 2>"$out/$name.log" &
  fi
  pids+=($!)
}
start fraud PORT=18082
start recommendation PORT=18081
start chatbot PORT=18080 CHATBOT_TRUSTED_CALLERS=127.0.0.1 FRAUD_URL=http://127.0.0.1:18082 RECOMMENDATION_URL=http://127.0.0.1:18081
for port in 18080 18081 18082; do
  for _ in $(seq 600); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done

ask() {
  for i in $(seq "$1" "$2"); do
    curl -sf -o /dev/null 127.0.0.1:18080/v1/chat -H 'content-type: application/json' \
      -d "{\"question\":\"What is the price of Samsung 65 QLED?\",\"customer_id\":\"bench-$i\"}"
  done
}
ask 1 50
sleep 1
target=$(pgrep -f "callgrind-out-file=$profile")
callgrind_control -z "$target" >/dev/null
ask 1000 $((1000 + requests - 1))
sleep 1.5
callgrind_control -d "$target" >/dev/null
sleep 1
dump=$(ls "$profile".* | tail -1)
total=$(callgrind_annotate "$dump" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
echo "$mode $service: $((total / requests)) instructions per request ($requests requests; profile $dump)"
