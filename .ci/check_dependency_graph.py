#!/usr/bin/env python3
"""Fails if the dependency graph holds two versions of an OpenTelemetry crate, or if
opentelemetry-otlp has an async HTTP client feature enabled (its batch exporters run on their own
threads, where an async client has no runtime and every export fails silently)."""

import json
import subprocess
import sys
from collections import defaultdict

FORBIDDEN_OTLP_FEATURES = {"reqwest-client", "hyper-client"}


def main() -> int:
    raw = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    meta = json.loads(raw)
    by_id = {p["id"]: p for p in meta["packages"]}
    versions = defaultdict(set)
    failures = []
    for node in meta["resolve"]["nodes"]:
        pkg = by_id[node["id"]]
        name = pkg["name"]
        if name.startswith("opentelemetry") or name == "tracing-opentelemetry":
            versions[name].add(pkg["version"])
        if name == "opentelemetry-otlp":
            bad = FORBIDDEN_OTLP_FEATURES.intersection(node.get("features", []))
            if bad:
                failures.append(f"opentelemetry-otlp has forbidden features: {sorted(bad)}")
    for name, found in sorted(versions.items()):
        if len(found) > 1:
            failures.append(f"{name} appears in {len(found)} versions: {sorted(found)}")
    if not versions:
        failures.append("no opentelemetry crate found: is this the right workspace?")
    for name, found in sorted(versions.items()):
        print(f"  {name} {', '.join(sorted(found))}")
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
