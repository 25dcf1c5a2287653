#!/usr/bin/env python3
"""Static checks of OpenTelemetry Collector configurations (no Collector binary needed).

    python3 deploy/check_collector_config.py [--distribution contrib|jaeger] FILE...

For every file:
  - every component id is `type` or `type/name`, and its type is one the pinned distribution
    ships (contrib 0.159.0, read from the copy of its manifest in deploy/collector/, or Jaeger
    2.19.0's build); deprecated aliases are rejected with their current name (e.g. the `otlp`
    exporter is `otlp_grpc` in 0.159.0, `spanmetrics` is `span_metrics`);
  - every pipeline references only defined receivers/processors/exporters/connectors, has at
    least one receiver and one exporter, and repeats nothing;
  - `memory_limiter` is the FIRST processor of every pipeline, and `batch`, where present, the
    last;
  - (contrib) in every pipeline fed by the OTLP receiver, the processor right after
    memory_limiter removes or masks data (attributes, transform or redaction), so nothing
    sensitive is batched or exported before it is scrubbed;
  - every connector is an exporter of one pipeline and a receiver of another, of the signal
    types it supports (span_metrics: traces -> metrics);
  - every defined component and extension is used, and every used extension defined.

Exits 1 with one line per problem, 0 when all files pass. Needs PyYAML.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

# The components otelcol-contrib 0.159.0 ships: derived from a copy of the distribution's
# manifest (deploy/collector/, with its source and tag), not a hand-typed list that goes stale.
# The manifest names Go modules; a component's type is its module's last path element without
# the kind suffix (`attributesprocessor` -> `attributes`), except for the components below, whose
# type (the `type:` of their metadata.yaml at v0.159.0) differs from that.
MANIFEST = Path(__file__).resolve().parent / "collector" / "otelcol-contrib-v0.159.0-manifest.yaml"
MODULE_TYPES = {
    "memorylimiterprocessor": "memory_limiter",
    "tailsamplingprocessor": "tail_sampling",
    "probabilisticsamplerprocessor": "probabilistic_sampler",
    "healthcheckextension": "health_check",
    "filestorage": "file_storage",
    # Renamed to snake_case (issue #45339); the old names are deprecated aliases, see DEPRECATED.
    "otlpexporter": "otlp_grpc",
    "otlphttpexporter": "otlp_http",
    "loadbalancingexporter": "load_balancing",
    "spanmetricsconnector": "span_metrics",
    "servicegraphconnector": "service_graph",
    "k8sclusterreceiver": "k8s_cluster",
}
# The derivation is checked against each component's metadata.yaml at v0.159.0 for every type
# the ShopMax configurations use; for others, a component whose type is not its module name
# needs an entry above.
KIND_SUFFIX = {"receivers": "receiver", "processors": "processor", "exporters": "exporter",
               "connectors": "connector", "extensions": "extension"}


def manifest_components(path: Path) -> dict[str, set[str]]:
    manifest = yaml.safe_load(path.read_text())
    out: dict[str, set[str]] = {}
    for kind, suffix in KIND_SUFFIX.items():
        types = set()
        for entry in manifest.get(kind) or []:
            module = entry["gomod"].split()[0].rstrip("/").split("/")[-1]
            types.add(MODULE_TYPES.get(module, module.removesuffix(suffix)))
        out[kind] = types
    return out


CONTRIB = manifest_components(MANIFEST)
# Jaeger 2.19.0 (cmd/jaeger/internal/components.go at v2.19.0), the subset relevant here.
JAEGER = {
    "receivers": {"otlp", "jaeger", "zipkin", "kafka", "nop"},
    "processors": {"batch", "memory_limiter", "tail_sampling", "attributes", "filter", "adaptive_sampling"},
    "exporters": {"jaeger_storage_exporter", "otlp_grpc", "otlp_http", "debug", "nop", "kafka", "prometheus"},
    "connectors": {"span_metrics", "forward"},
    "extensions": {"jaeger_storage", "jaeger_query", "jaeger_mcp", "remote_sampling", "healthcheckv2", "pprof", "zpages", "expvar"},
}
DISTRIBUTIONS = {"contrib": CONTRIB, "jaeger": JAEGER}

# Old names that 0.159.0 still accepts as deprecated aliases: rejected so the configs do not
# break when the aliases go.
DEPRECATED = {
    "contrib": {
        ("exporters", "otlp"): "otlp_grpc",
        ("exporters", "otlphttp"): "otlp_http",
        # contrib PR #48533 (2026-05): `loadbalancing` is a deprecated alias of `load_balancing`.
        ("exporters", "loadbalancing"): "load_balancing",
        # contrib PRs #47963 and #47971 (2026-04), issue #45339: snake_case connector names.
        ("connectors", "spanmetrics"): "span_metrics",
        ("connectors", "servicegraph"): "service_graph",
    },
    # Jaeger 2.19 builds on a Collector core where these are deprecated aliases too.
    "jaeger": {
        ("exporters", "otlp"): "otlp_grpc",
        ("exporters", "otlphttp"): "otlp_http",
        ("connectors", "spanmetrics"): "span_metrics",
    },
}

# Connector type -> (signal it consumes as an exporter, signal it produces as a receiver).
CONNECTOR_SIGNALS = {
    "span_metrics": ({"traces"}, {"metrics"}),
    "service_graph": ({"traces"}, {"metrics"}),
    "count": ({"traces", "metrics", "logs"}, {"metrics"}),
    # forward passes a signal on unchanged: what it consumes is what it produces.
    "forward": ({"traces"}, {"traces"}),
}
SIGNALS = {"traces", "metrics", "logs", "profiles"}
SCRUBBERS = {"attributes", "transform", "redaction"}
ID_RE = re.compile(r"^[a-z][a-z0-9_]*(/[^/\s]+)?$")


def ctype(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def check(path: Path, distribution: str) -> list[str]:
    errors: list[str] = []

    def err(msg: str) -> None:
        errors.append(f"{path}: {msg}")

    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        return [f"{path}: cannot read YAML: {e}"]
    if not isinstance(cfg, dict):
        return [f"{path}: not a mapping"]

    known = DISTRIBUTIONS[distribution]
    sections = ("receivers", "processors", "exporters", "connectors", "extensions")
    for key in cfg:
        if key not in sections and key != "service":
            err(f"unknown top-level key {key!r}")

    defined: dict[str, dict] = {}
    for section in sections:
        value = cfg.get(section) or {}
        if not isinstance(value, dict):
            err(f"{section} must be a mapping")
            value = {}
        defined[section] = value
        for cid in value:
            if not ID_RE.match(str(cid)):
                err(f"{section}: malformed component id {cid!r}")
                continue
            t = ctype(cid)
            if (section, t) in DEPRECATED[distribution]:
                err(f"{section}: {cid!r} uses the deprecated type {t!r}; use {DEPRECATED[distribution][(section, t)]!r}")
            elif t not in known[section]:
                err(f"{section}: type {t!r} (in {cid!r}) is not a known {distribution} component of this kind")

    service = cfg.get("service")
    if not isinstance(service, dict):
        return errors + [f"{path}: no service section"]
    pipelines = service.get("pipelines")
    if not isinstance(pipelines, dict) or not pipelines:
        return errors + [f"{path}: service.pipelines is empty"]

    used = {s: set() for s in sections}
    for ext in service.get("extensions") or []:
        if ext not in defined["extensions"]:
            err(f"service.extensions: {ext!r} is not defined")
        used["extensions"].add(ext)

    connector_as_exporter: dict[str, set[str]] = {}
    connector_as_receiver: dict[str, set[str]] = {}
    for pid, pipeline in pipelines.items():
        where = f"pipeline {pid!r}"
        signal = ctype(str(pid))
        if signal not in SIGNALS:
            err(f"{where}: unknown signal type {signal!r}")
        if not isinstance(pipeline, dict):
            err(f"{where}: must be a mapping")
            continue
        for key in pipeline:
            if key not in ("receivers", "processors", "exporters"):
                err(f"{where}: unknown key {key!r}")
        receivers = pipeline.get("receivers") or []
        processors = pipeline.get("processors") or []
        exporters = pipeline.get("exporters") or []
        if not receivers:
            err(f"{where}: no receivers")
        if not exporters:
            err(f"{where}: no exporters")
        for kind, items in (("receivers", receivers), ("processors", processors), ("exporters", exporters)):
            if len(set(items)) != len(items):
                err(f"{where}: {kind} repeat an entry: {items}")
        for r in receivers:
            if r in defined["receivers"]:
                used["receivers"].add(r)
            elif r in defined["connectors"]:
                used["connectors"].add(r)
                connector_as_receiver.setdefault(r, set()).add(signal)
            else:
                err(f"{where}: receiver {r!r} is not defined (neither a receiver nor a connector)")
        for p in processors:
            if p in defined["processors"]:
                used["processors"].add(p)
            else:
                err(f"{where}: processor {p!r} is not defined")
        for e in exporters:
            if e in defined["exporters"]:
                used["exporters"].add(e)
            elif e in defined["connectors"]:
                used["connectors"].add(e)
                connector_as_exporter.setdefault(e, set()).add(signal)
            else:
                err(f"{where}: exporter {e!r} is not defined (neither an exporter nor a connector)")

        types = [ctype(p) for p in processors]
        if not types or types[0] != "memory_limiter":
            err(f"{where}: memory_limiter must be the first processor (processors: {processors})")
        if types.count("memory_limiter") > 1:
            err(f"{where}: memory_limiter appears more than once")
        if "batch" in types and types[-1] != "batch":
            err(f"{where}: batch must be the last processor (processors: {processors})")
        if distribution == "contrib" and any(ctype(r) == "otlp" for r in receivers) and signal in ("traces", "logs", "metrics"):
            if len(types) < 2 or types[1] not in SCRUBBERS:
                err(f"{where}: fed by OTLP, so the processor after memory_limiter must scrub data "
                    f"({', '.join(sorted(SCRUBBERS))}); got {processors}")

    for cid in defined["connectors"]:
        t = ctype(cid)
        ins, outs = connector_as_exporter.get(cid, set()), connector_as_receiver.get(cid, set())
        if not ins or not outs:
            err(f"connector {cid!r} must be an exporter of one pipeline and a receiver of another")
            continue
        if t in CONNECTOR_SIGNALS:
            want_in, want_out = CONNECTOR_SIGNALS[t]
            if not ins <= want_in:
                err(f"connector {cid!r} consumes {sorted(ins)}, supports only {sorted(want_in)}")
            if not outs <= want_out:
                err(f"connector {cid!r} produces {sorted(outs)}, supports only {sorted(want_out)}")

    for section in sections:
        for cid in defined[section]:
            if cid not in used[section]:
                err(f"{section}: {cid!r} is defined but not used by any pipeline")
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distribution", choices=sorted(DISTRIBUTIONS), default="contrib")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    problems: list[str] = []
    for f in args.files:
        found = check(f, args.distribution)
        problems += found
        if not found:
            print(f"ok: {f} ({args.distribution})")
    for p in problems:
        print(f"ERROR {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
