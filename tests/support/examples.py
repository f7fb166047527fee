"""The outputs sync.yaml.example shows in comments, as config data."""

from __future__ import annotations

from typing import Any

import yaml

from tests.support.paths import REPO

MARKER = "# --- Credential shapes"


def commented_examples() -> list[dict[str, Any]]:
    """The outputs after the credential-shapes header, uncommented as the file says
    (remove the first ``#`` of each line): lines ``#  …`` and bare ``#``."""
    text = (REPO / "sync.yaml.example").read_text()
    _, marker, tail = text.partition(MARKER)
    assert marker, "sync.yaml.example lost its credential-shapes section"
    lines = [line[1:] for line in tail.splitlines() if line.startswith("#  ") or line == "#"]
    items = yaml.safe_load("\n".join(lines))
    assert isinstance(items, list) and all(isinstance(item, dict) for item in items)
    return items
