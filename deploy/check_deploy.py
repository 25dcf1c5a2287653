#!/usr/bin/env python3
"""Static policy checks of the ShopMax deployment (Docker Compose, Dockerfile, Kubernetes).

    python3 deploy/check_deploy.py --k8s-rendered RENDERED.yaml

Run from the repository root. Checks what schema validation cannot:
  images     every image in docker-compose.yml, the Dockerfile and the rendered Kubernetes
             manifests has an explicit tag (or digest) that is not `latest`; the third-party
             images are exactly the pinned versions below, the same in Compose and Kubernetes
  compose    health checks on every long-running service; the start-up order (Collector healthy
             before the services, mock LLM before recommendation/chatbot, recommendation and
             fraud before chatbot); memory limits that fit an 8 GB laptop; named volumes for the
             Tempo/Prometheus/Grafana data; ports published on 127.0.0.1 only; bind-mounted
             files exist; build targets exist in deploy/Dockerfile; each ShopMax service gets
             only OTEL_*/telemetry variables and its own
  dockerfile one final stage per service, with USER, HEALTHCHECK and ENTRYPOINT
  k8s        non-root, read-only root filesystem, no privilege escalation, all capabilities
             dropped, RuntimeDefault seccomp, requests and limits on every container; per
             service a Deployment with /healthz liveness and /readyz readiness probes, the
             OpenTelemetry sidecar, a Service; the LLM key from a Secret; the chatbot HPA;
             ConfigMap variables allowed per service
  copies     the Kubernetes copies of the Collector/Jaeger/Tempo configurations are identical
             to the Compose ones
  names      the span-metric names agree between the Collector (span_metrics namespace, unit),
             Jaeger's Monitor tab settings and the Grafana dashboard; the dashboard's data
             sources are provisioned; the dashboard shows the LLM cost; logs go to Loki, and
             Grafana links a log line to its trace and a span to its logs
Exits 1 with one line per problem.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

# The pinned third-party images (Compose and Kubernetes must agree).
PINNED = {
    "otel/opentelemetry-collector-contrib": "0.159.0",
    "jaegertracing/jaeger": "2.19.0",
    "grafana/tempo": "2.10.8",
    "prom/prometheus": "v3.13.1",
    "grafana/grafana": "13.1.0",
    "grafana/loki": "3.7.7",
    "busybox": "1.38.0-musl",
}
SHOPMAX = {"chatbot": 8080, "recommendation": 8081, "fraud": 8082, "mock-llm": 8090}
# Variables each service may receive: the telemetry crate's, then its own.
TELEMETRY_VARS = re.compile(r"^(OTEL_[A-Z0-9_]+|TELEMETRY_[A-Z0-9_]+|RUST_LOG|LOG_FORMAT)$")
OWN_VARS = {
    "chatbot": re.compile(r"^(PORT|FRAUD_URL|RECOMMENDATION_URL|LLM_(BASE_URL|API_KEY|MODEL|PROVIDER|TIMEOUT_MS|MAX_RETRIES|INITIAL_BACKOFF_MS|MAX_BACKOFF_MS)|CHATBOT_[A-Z0-9_]+)$"),
    "recommendation": re.compile(r"^(PORT|LLM_(BASE_URL|API_KEY|EMBEDDING_MODEL|TIMEOUT_MS|MAX_RETRIES|INITIAL_BACKOFF_MS|MAX_BACKOFF_MS))$"),
    "fraud": re.compile(r"^(PORT|FRAUD_[A-Z0-9_]+)$"),
    "mock-llm": re.compile(r"^MOCK_LLM_[A-Z0-9_]+$"),
}
# (service, must be healthy first)
REQUIRED_ORDER = [(s, "otel-collector") for s in SHOPMAX] + [
    ("recommendation", "mock-llm"),
    ("chatbot", "mock-llm"),
    ("chatbot", "recommendation"),
    ("chatbot", "fraud"),
    ("otel-collector", "loki"),
]
NAMED_DATA_VOLUMES = {"loki": "/loki", "tempo": "/var/tempo", "prometheus": "/prometheus", "grafana": "/var/lib/grafana"}
MEMORY_BUDGET_MIB = 6 * 1024  # leaves ~2 GB of an 8 GB laptop to the OS and Docker
COPIES = [
    ("otel-collector.yaml", "deploy/k8s/config/otel-gateway.yaml"),
    ("deploy/jaeger/config.yaml", "deploy/k8s/config/jaeger.yaml"),
    ("deploy/jaeger/ui-config.json", "deploy/k8s/config/jaeger-ui-config.json"),
    ("deploy/tempo/tempo.yaml", "deploy/k8s/config/tempo.yaml"),
    ("deploy/loki/loki.yaml", "deploy/k8s/config/loki.yaml"),
]

problems: list[str] = []


def fail(where: str, msg: str) -> None:
    problems.append(f"{where}: {msg}")


def resolve_defaults(value: str) -> str | None:
    """`${VAR:-default}` -> default; None if a variable without a default remains."""
    out = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", value)
    return None if "$" in out else out


def split_image(image: str) -> tuple[str, str | None, str | None]:
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    name, tag = image, None
    if ":" in image.rsplit("/", 1)[-1]:
        name, tag = image.rsplit(":", 1)
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name, tag, digest


def check_image(where: str, image: str) -> None:
    resolved = resolve_defaults(image)
    if resolved is None:
        fail(where, f"image {image!r} depends on a variable without a default")
        return
    name, tag, digest = split_image(resolved)
    if not tag and not digest:
        fail(where, f"image {resolved!r} has no tag")
    elif tag == "latest" or tag in ("stable", "main", "master", "edge", "nightly"):
        fail(where, f"image {resolved!r} uses the moving tag {tag!r}")
    if name in PINNED and tag != PINNED[name]:
        fail(where, f"image {resolved!r}: expected tag {PINNED[name]!r}")


def mib(size: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgG])?[iI]?[bB]?", str(size).strip())
    if not m:
        raise ValueError(size)
    n, unit = float(m.group(1)), (m.group(2) or "").lower()
    return {"": n / 2**20, "k": n / 1024, "m": n, "g": n * 1024}[unit]


def dockerfile_targets(path: Path) -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current = None
    args: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"ARG\s+(\w+)=(\S+)", line)
        if m and current is None:
            args[m.group(1)] = m.group(2)
        m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            base = re.sub(r"\$\{(\w+)\}", lambda a: args.get(a.group(1), "$" + a.group(1)), m.group(1))
            if base not in stages:
                check_image(f"{path} FROM", base) if "$" not in base else fail(str(path), f"FROM {m.group(1)} has no ARG default")
            current = m.group(2) or base
            stages[current] = []
            continue
        if current is not None:
            stages[current].append(line.split()[0].upper())
    return stages


def check_dockerfile() -> set[str]:
    path = Path("deploy/Dockerfile")
    stages = dockerfile_targets(path)
    for svc in SHOPMAX:
        if svc not in stages:
            fail(str(path), f"no build target {svc!r}")
            continue
        for instr in ("HEALTHCHECK", "ENTRYPOINT", "EXPOSE"):
            if instr not in stages[svc]:
                fail(str(path), f"target {svc!r} has no {instr}")
    text = path.read_text()
    if not re.search(r"^USER\s+10001", text, re.M):
        fail(str(path), "the runtime stage must set USER 10001 (non-root, numeric)")
    if "--locked" not in text or not all(f"-p {s}" in text for s in SHOPMAX):
        fail(str(path), "the builder must run cargo build --release --locked -p <each service>")
    return set(stages)


def check_compose(targets: set[str]) -> dict:
    path = "docker-compose.yml"
    compose = yaml.safe_load(Path(path).read_text())
    services = compose.get("services", {})
    top_volumes = set((compose.get("volumes") or {}).keys())
    total = 0.0
    for name, svc in services.items():
        where = f"{path} service {name}"
        if "image" not in svc:
            fail(where, "no image (every service must name a pinned image)")
        else:
            check_image(where, svc["image"])
        if "build" in svc:
            target = svc["build"].get("target")
            if target not in targets:
                fail(where, f"build target {target!r} is not a stage of deploy/Dockerfile")
        one_shot = str(svc.get("restart", "")) == "no"
        if not one_shot and "healthcheck" not in svc:
            fail(where, "no healthcheck")
        limit = (((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}).get("memory")
        if not limit:
            fail(where, "no memory limit (deploy.resources.limits.memory)")
        else:
            total += mib(limit)
        for port in svc.get("ports") or []:
            if not str(port).startswith("127.0.0.1:"):
                fail(where, f"port {port!r} is published on all interfaces; bind it to 127.0.0.1")
        for vol in svc.get("volumes") or []:
            source, target = str(vol).split(":")[:2]
            if source.startswith("."):
                if not Path(source).exists():
                    fail(where, f"bind-mounted {source!r} does not exist")
            elif source not in top_volumes:
                fail(where, f"volume {source!r} is not declared under top-level volumes")
        if name in NAMED_DATA_VOLUMES:
            want = NAMED_DATA_VOLUMES[name]
            if not any(str(v).split(":")[1] == want and str(v).split(":")[0] in top_volumes for v in svc.get("volumes") or []):
                fail(where, f"{want} must be a named volume")
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, spec in deps.items():
            if dep not in services:
                fail(where, f"depends on unknown service {dep!r}")
            elif spec.get("condition") == "service_healthy" and "healthcheck" not in services[dep]:
                fail(where, f"waits for {dep!r} to be healthy, but it has no healthcheck")
        if name in SHOPMAX:
            env = svc.get("environment") or {}
            if isinstance(env, list):
                env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
            for var in env:
                if not (TELEMETRY_VARS.match(var) or OWN_VARS[name].match(var)):
                    fail(where, f"environment variable {var!r} is neither a telemetry variable nor one of {name}'s own")
            if env.get("OTEL_SERVICE_NAME") != name:
                fail(where, f"OTEL_SERVICE_NAME must be {name!r}")
            if "otel-collector" not in str(env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")):
                fail(where, "OTEL_EXPORTER_OTLP_ENDPOINT must point at the otel-collector service")
            if env.get("LOG_FORMAT") != "json":
                fail(where, "LOG_FORMAT must be json in containers")
            if set(str(env.get("TELEMETRY_INTERNAL_HOSTS", "")).split(",")) != {"chatbot", "recommendation", "fraud"}:
                fail(where, "TELEMETRY_INTERNAL_HOSTS must be chatbot,recommendation,fraud (the LLM is external)")
            if "LLM_BASE_URL" in env and env["LLM_BASE_URL"] != "${LLM_BASE_URL:-http://mock-llm:8090/v1}":
                fail(where, "LLM_BASE_URL must default to the mock and be overridable: ${LLM_BASE_URL:-http://mock-llm:8090/v1}")
    for svc, dep in REQUIRED_ORDER:
        cond = ((services.get(svc, {}).get("depends_on") or {}).get(dep) or {}).get("condition")
        if cond != "service_healthy":
            fail(path, f"{svc} must depend on {dep} with condition service_healthy (has {cond!r})")
    if total > MEMORY_BUDGET_MIB:
        fail(path, f"memory limits add up to {total:.0f} MiB, over the {MEMORY_BUDGET_MIB} MiB budget")
    print(f"ok: {path}: {len(services)} services, memory limits total {total:.0f} MiB")
    return compose


def containers(pod: dict) -> list[tuple[dict, bool]]:
    return [(c, True) for c in pod.get("initContainers") or []] + [(c, False) for c in pod.get("containers") or []]


def check_k8s(rendered: Path) -> None:
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    by_kind: dict[str, dict[str, dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    configmaps = by_kind.get("ConfigMap", {})
    services = by_kind.get("Service", {})
    for name, dep in by_kind.get("Deployment", {}).items():
        where = f"k8s Deployment {name}"
        pod = dep["spec"]["template"]["spec"]
        psc = pod.get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True:
            fail(where, "pod securityContext.runAsNonRoot must be true")
        if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            fail(where, "pod seccompProfile must be RuntimeDefault")
        if pod.get("automountServiceAccountToken") is not False:
            fail(where, "automountServiceAccountToken must be false (nothing here calls the API)")
        for c, _ in containers(pod):
            cw = f"{where} container {c['name']}"
            check_image(cw, c["image"])
            sc = c.get("securityContext") or {}
            if sc.get("allowPrivilegeEscalation") is not False:
                fail(cw, "allowPrivilegeEscalation must be false")
            if sc.get("readOnlyRootFilesystem") is not True:
                fail(cw, "readOnlyRootFilesystem must be true")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                fail(cw, "capabilities must drop ALL")
            res = c.get("resources") or {}
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in (res.get(kind) or {}):
                        fail(cw, f"no {kind}.{r}")
        if name not in SHOPMAX:
            continue
        app = next((c for c in pod["containers"] if c["name"] == name), None)
        sidecar = next((c for c in pod.get("initContainers") or [] if c["name"] == "otel-sidecar"), None)
        if app is None:
            fail(where, f"no container named {name!r}")
            continue
        if sidecar is None or sidecar.get("restartPolicy") != "Always":
            fail(where, "needs the otel-sidecar native sidecar (initContainers, restartPolicy Always)")
        elif not sidecar["image"].startswith("otel/opentelemetry-collector-contrib:"):
            fail(where, "the sidecar must run the pinned Collector image")
        if ((app.get("livenessProbe") or {}).get("httpGet") or {}).get("path") != "/healthz":
            fail(where, "liveness probe must GET /healthz")
        if ((app.get("readinessProbe") or {}).get("httpGet") or {}).get("path") != "/readyz":
            fail(where, "readiness probe must GET /readyz")
        ports = [p["containerPort"] for p in app.get("ports") or []]
        if ports != [SHOPMAX[name]]:
            fail(where, f"container port must be {SHOPMAX[name]} (has {ports})")
        env_names: dict[str, str] = {}
        for src in app.get("envFrom") or []:
            cm = configmaps.get((src.get("configMapRef") or {}).get("name", ""))
            if cm is None:
                fail(where, f"envFrom references a missing ConfigMap: {src}")
                continue
            env_names.update(cm.get("data") or {})
        for e in app.get("env") or []:
            env_names[e["name"]] = e.get("value", "<from>")
            if e["name"] == "LLM_API_KEY" and "secretKeyRef" not in (e.get("valueFrom") or {}):
                fail(where, "LLM_API_KEY must come from a Secret")
        for var in env_names:
            if not (TELEMETRY_VARS.match(var) or OWN_VARS[name].match(var)):
                fail(where, f"variable {var!r} is neither a telemetry variable nor one of {name}'s own")
        if env_names.get("OTEL_SERVICE_NAME") != name:
            fail(where, f"OTEL_SERVICE_NAME must be {name!r}")
        if env_names.get("OTEL_EXPORTER_OTLP_ENDPOINT") != "http://127.0.0.1:4317":
            fail(where, "services must export to the sidecar at http://127.0.0.1:4317")
        if name in ("chatbot", "recommendation") and "LLM_API_KEY" not in env_names:
            fail(where, "LLM_API_KEY (from the llm-credentials Secret) is missing")
        svc = services.get(name)
        if svc is None:
            fail(where, f"no Service named {name!r}")
        elif svc["spec"]["selector"] != {"app.kubernetes.io/name": name} or [p["port"] for p in svc["spec"]["ports"]] != [SHOPMAX[name]]:
            fail(where, f"Service {name} must select app.kubernetes.io/name={name} on port {SHOPMAX[name]}")
    for wanted in ("otel-gateway", "otel-gateway-headless", "jaeger", "tempo", "prometheus"):
        if wanted not in services:
            fail("k8s", f"no Service {wanted!r} (referenced by the configurations)")
    hpa = by_kind.get("HorizontalPodAutoscaler", {}).get("chatbot")
    if hpa is None or hpa["apiVersion"] != "autoscaling/v2" or hpa["spec"]["scaleTargetRef"].get("name") != "chatbot":
        fail("k8s", "needs an autoscaling/v2 HorizontalPodAutoscaler for the chatbot Deployment")
    elif "replicas" in by_kind["Deployment"]["chatbot"]["spec"]:
        fail("k8s", "the chatbot Deployment must not set replicas (the HPA owns them)")
    if "llm-credentials" not in by_kind.get("Secret", {}):
        fail("k8s", "no llm-credentials Secret (a placeholder is expected)")
    print(f"ok: {rendered}: {sum(len(v) for v in by_kind.values())} resources")


def check_copies() -> None:
    for original, copy in COPIES:
        if Path(original).read_bytes() != Path(copy).read_bytes():
            fail(copy, f"differs from {original}; copy it again (cp {original} {copy})")


def check_names() -> None:
    collector = yaml.safe_load(Path("otel-collector.yaml").read_text())
    sm = collector["connectors"]["span_metrics"]
    prefix = sm.get("namespace", "traces.span.metrics").replace(".", "_")
    unit = {"ms": "milliseconds", "s": "seconds"}[(sm.get("histogram") or {}).get("unit", "ms")]
    calls, duration = f"{prefix}_calls_total", f"{prefix}_duration_{unit}_bucket"
    jaeger = yaml.safe_load(Path("deploy/jaeger/config.yaml").read_text())
    prom = next(iter(jaeger["extensions"]["jaeger_storage"]["metric_backends"].values()))["prometheus"]
    if prom.get("metric_namespace") != prefix or prom.get("latency_unit", "ms") != (sm.get("histogram") or {}).get("unit", "ms"):
        fail("deploy/jaeger/config.yaml", f"metric_namespace/latency_unit must match the span_metrics connector ({prefix}, {unit})")
    if not (prom.get("normalize_calls") and prom.get("normalize_duration")):
        fail("deploy/jaeger/config.yaml", "normalize_calls and normalize_duration must be true (the Prometheus exporter adds suffixes)")
    dash_path = Path("deploy/grafana/dashboards/shopmax.json")
    dash = json.loads(dash_path.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    if not any(calls in e for e in exprs) or not any(duration in e for e in exprs):
        fail(str(dash_path), f"the RED panels must query {calls} and {duration}")
    for needed in ("gen_ai_client_token_usage_sum", "gen_ai_client_operation_duration_seconds_bucket", "gen_ai_token_type", "gen_ai_client_operation_cost_total"):
        if not any(needed in e for e in exprs):
            fail(str(dash_path), f"no panel queries {needed}")
    for e in exprs:
        for metric in re.findall(r"\b(traces_span_metrics_[a-z_]+)", e):
            if metric not in (calls, duration):
                fail(str(dash_path), f"unknown span metric {metric!r} (expected {calls} or {duration})")
    uids = set()
    for f in Path("deploy/grafana/provisioning/datasources").glob("*.y*ml"):
        uids |= {d["uid"] for d in yaml.safe_load(f.read_text())["datasources"]}
    for p in dash["panels"]:
        for ds in [p.get("datasource")] + [t.get("datasource") for t in p.get("targets", [])]:
            if ds and ds.get("uid") not in uids:
                fail(str(dash_path), f"panel {p.get('title')!r} uses data source uid {ds.get('uid')!r}, not provisioned ({sorted(uids)})")
    # Exemplars: kept by the connector, exposed in OpenMetrics, stored by Prometheus, shown on
    # the latency panels and linked to Tempo.
    if not (sm.get("exemplars") or {}).get("enabled"):
        fail("otel-collector.yaml", "span_metrics must keep exemplars (exemplars.enabled: true)")
    if not (collector.get("exporters", {}).get("prometheus") or {}).get("enable_open_metrics"):
        fail("otel-collector.yaml", "the prometheus exporter must expose OpenMetrics (enable_open_metrics), which carries exemplars")
    compose = yaml.safe_load(Path("docker-compose.yml").read_text())
    if "--enable-feature=exemplar-storage" not in compose["services"]["prometheus"].get("command", []):
        fail("docker-compose.yml", "Prometheus needs --enable-feature=exemplar-storage to keep exemplars")
    k8s_prometheus = [d for d in yaml.safe_load_all(Path("deploy/k8s/prometheus.yaml").read_text()) if d and d.get("kind") == "Deployment"]
    k8s_args = [a for d in k8s_prometheus for c in d["spec"]["template"]["spec"]["containers"] for a in c.get("args", [])]
    if "--enable-feature=exemplar-storage" not in k8s_args:
        fail("deploy/k8s/prometheus.yaml", "Prometheus needs --enable-feature=exemplar-storage to keep exemplars")
    if not any(t.get("exemplar") for p in dash["panels"] for t in p.get("targets", []) if duration in t.get("expr", "")):
        fail(str(dash_path), "the latency panels must show exemplars (\"exemplar\": true)")
    # Logs and traces link both ways: Loki's trace_id to Tempo, Tempo's spans to Loki.
    sources = {d["uid"]: d for f in Path("deploy/grafana/provisioning/datasources").glob("*.y*ml")
               for d in yaml.safe_load(f.read_text())["datasources"]}
    loki = sources.get("loki", {}).get("jsonData", {})
    if not any(f.get("datasourceUid") == "tempo" and f.get("matcherRegex") == "trace_id" for f in loki.get("derivedFields", [])):
        fail("deploy/grafana/provisioning/datasources", "the Loki data source needs a derived field from trace_id to the Tempo data source")
    if not any(d.get("datasourceUid") == "tempo" for d in sources.get("prometheus", {}).get("jsonData", {}).get("exemplarTraceIdDestinations", [])):
        fail("deploy/grafana/provisioning/datasources", "the Prometheus data source needs exemplarTraceIdDestinations to Tempo")
    if (sources.get("tempo", {}).get("jsonData", {}).get("tracesToLogsV2") or {}).get("datasourceUid") != "loki":
        fail("deploy/grafana/provisioning/datasources", "the Tempo data source needs tracesToLogsV2 pointing at the Loki data source")
    exporters = collector.get("exporters", {})
    if not any(k.startswith("otlp_http/loki") and str(v.get("endpoint", "")).rstrip("/").endswith("/otlp") for k, v in exporters.items()):
        fail("otel-collector.yaml", "logs must go to Loki's OTLP endpoint (otlp_http/loki, endpoint .../otlp)")
    print(f"ok: metric names agree: {calls}, {duration}; {len(exprs)} dashboard queries; logs and traces linked")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k8s-rendered", type=Path, required=True, help="output of kustomize build deploy/k8s")
    args = parser.parse_args()
    targets = check_dockerfile()
    check_compose(targets)
    check_k8s(args.k8s_rendered)
    check_copies()
    check_names()
    for p in problems:
        print(f"ERROR {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
