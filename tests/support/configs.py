"""sync.yaml for the tests and the benchmarks: the shipped example, pointed at an emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import REPO
from tests.support.seeds import REGION


def example_config(out_dir: Path, endpoint: str, **overrides: Any) -> dict[str, Any]:
    """sync.yaml.example with outputs moved under ``out_dir`` and ``endpoint`` as the AWS
    endpoint; no metrics server, no notify targets; ``overrides`` replace top-level sections."""
    data: dict[str, Any] = yaml.safe_load((REPO / "sync.yaml.example").read_text())
    data["aws"] = {"region": REGION, "endpoint_url": endpoint}
    data["metrics"] = {"listen": None}
    data["notify"] = {}
    for out in data["outputs"]:
        out["path"] = str(out_dir / Path(out["path"]).name)
        out.pop("notify", None)
    data.update(overrides)
    return data


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
