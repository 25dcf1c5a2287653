#!/usr/bin/env python3
"""Renders deploy/k8s without kustomize, for machines that have no kustomize at all.

    python3 deploy/render_k8s_fallback.py deploy/k8s > rendered.yaml

Supports exactly the kustomization features deploy/k8s uses: `namespace`, `resources` (plain
files), `configMapGenerator` (`literals`, `files` with `key=path`) and `images` (`newName`,
`newTag`). Anything else in kustomization.yaml is an error, so the fallback can never silently
render something different from kustomize. Generated ConfigMaps keep their plain names (kustomize
adds a content hash and rewrites the references; either way the references resolve).
.ci/validate-deploy.sh uses this only when neither kubectl, kustomize nor Debian's
kubernetes-client package is available, and says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

SUPPORTED = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator", "images"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume", "StorageClass"}


def render(root: Path) -> list[dict]:
    k = yaml.safe_load((root / "kustomization.yaml").read_text())
    unknown = set(k) - SUPPORTED
    if unknown:
        raise SystemExit(f"render_k8s_fallback: unsupported kustomization fields {sorted(unknown)}")
    docs: list[dict] = []
    for res in k.get("resources") or []:
        docs += [d for d in yaml.safe_load_all((root / res).read_text()) if d]
    for gen in k.get("configMapGenerator") or []:
        if set(gen) - {"name", "literals", "files"}:
            raise SystemExit(f"render_k8s_fallback: unsupported configMapGenerator fields in {gen['name']}")
        data: dict[str, str] = {}
        for lit in gen.get("literals") or []:
            key, value = lit.split("=", 1)
            data[key] = value
        for f in gen.get("files") or []:
            key, path = f.split("=", 1) if "=" in f else (Path(f).name, f)
            data[key] = (root / path).read_text()
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
    images = {i["name"]: i for i in k.get("images") or []}
    for d in docs:
        if k.get("namespace") and d["kind"] not in CLUSTER_SCOPED:
            d["metadata"]["namespace"] = k["namespace"]
        pod = (d.get("spec") or {}).get("template", {}).get("spec") if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job") else None
        for c in (pod or {}).get("initContainers", []) + (pod or {}).get("containers", []):
            name, _, tag = c["image"].partition(":")
            if name in images:
                c["image"] = f"{images[name].get('newName', name)}:{images[name].get('newTag', tag)}"
    return docs


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "deploy/k8s")
    yaml.safe_dump_all(render(root), sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
