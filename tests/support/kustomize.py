"""Render kustomizations with ``kubectl kustomize`` and validate objects with
``kubernetes-validate``; a sample "existing" Deployment for the sidecar component.

Both tools run offline: ``kubectl kustomize`` needs no cluster, and
``kubernetes-validate`` ships the API schemas of each Kubernetes version.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

# The oldest Kubernetes the manifests are for: native sidecars (an init container
# with restartPolicy: Always) are on by default from 1.29.
MIN_KUBERNETES = "1.29.0"

# A team's Deployment before it adopts secretsync: its own init container, two
# containers, its own scrape annotations and volumes. The component must keep all
# of it as it is.
SAMPLE_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders
  labels: {app: orders}
spec:
  replicas: 3
  selector:
    matchLabels: {app: orders}
  template:
    metadata:
      labels: {app: orders}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "8080"
    spec:
      serviceAccountName: orders
      securityContext: {runAsUser: 10001, runAsGroup: 10001, runAsNonRoot: true}
      initContainers:
        - name: migrate
          image: example.com/orders:2.0
          args: ["migrate"]
      containers:
        - name: orders
          image: example.com/orders:2.0
          ports:
            - {name: http, containerPort: 8080}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
        - name: log-shipper
          image: example.com/shipper:1.0
      volumes:
        - name: tmp
          emptyDir: {}
"""


def render(kubectl: str, directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize directory`` prints; fails the test with
    kustomize's message if it refuses the kustomization."""
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def validate(validator: str, objects: list[dict[str, Any]], work: Path) -> None:
    """Strict schema validation (unknown fields are errors) against MIN_KUBERNETES.
    Custom resources without a schema (PodMonitor) are not passed in."""
    path = work / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    result = subprocess.run(
        [validator, "--strict", "--quiet", "-k", MIN_KUBERNETES, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr, result.stdout + result.stderr


def named_yaml_blocks(markdown: str) -> dict[str, str]:
    """Fenced ```yaml blocks whose first line is ``# <file name>``, by that name:
    the files a README tells the reader to write."""
    blocks: dict[str, str] = {}
    for body in re.findall(r"```yaml\n(.*?)```", markdown, flags=re.DOTALL):
        first, _, _rest = body.partition("\n")
        match = re.fullmatch(r"# ([\w.-]+\.ya?ml)", first.strip())
        if match:
            blocks[match.group(1)] = body
    return blocks


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Objects by kind (the kustomizations here have one object per kind)."""
    kinds: dict[str, dict[str, Any]] = {}
    for obj in objects:
        assert obj["kind"] not in kinds, f"two objects of kind {obj['kind']}"
        kinds[obj["kind"]] = obj
    return kinds
