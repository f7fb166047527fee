"""Deeply nested secrets against the real daemon: bounded memory, render errors, no leak.

A secret's value is held for log redaction (every string in it is masked in
every log line). A nested value must not make that cost grow with its depth,
and a value nested too deeply to read at all is that output's render error,
never a failed fetch. Real children against moto; memory is the child's own
VmHWM, checked against the memory limit the manifests ship.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.configs import example_config, write_yaml
from tests.support.daemon import Daemon
from tests.support.motoserver import Moto
from tests.support.wait import wait_until

PY = sys.executable
MEMORY_LIMIT_KIB = 160 * 1024  # the memory limit the ECS and Kubernetes manifests ship
CANARY = "CANARY-nest"


def nested_object(levels: int, size: int) -> str:
    """JSON text of ``size`` characters: key "k" holds ``levels`` nested objects, each
    with a short string of its own, around one long string (the rest of the size) at
    the bottom. Every string holds the canary."""
    opening = "".join(f'{{"v{n}": "{CANARY}-{n:04d}", "n": ' for n in range(levels))
    frame = '{"k": ' + opening + '""' + "}" * levels + "}"
    bottom = f"{CANARY}-bottom-" + "x" * (size - len(frame) - len(CANARY) - 8)
    return '{"k": ' + opening + f'"{bottom}"' + "}" * levels + "}"


def deep_array(levels: int) -> str:
    """A JSON object whose key "k" holds ``levels`` nested arrays around the canary."""
    return '{"k": ' + "[" * levels + f'"{CANARY}-deep"' + "]" * levels + "}"


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def events(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def test_a_secret_nested_400_levels_is_held_in_bounded_memory(
    moto: Moto, tmp_path: Path, start_daemon: Any
) -> None:
    text = nested_object(400, 64 * 1024)
    assert len(text) == 64 * 1024  # the most Secrets Manager accepts
    moto.create("team/nested", text)
    out = tmp_path / "out"
    data = example_config(out, moto.url, poll={"interval": "30s", "jitter": 0})
    data["outputs"] = [
        {"path": str(out / "nested.properties"), "secrets": [{"id": "team/nested", "as": "k"}]}
    ]
    daemon: Daemon = start_daemon(write_yaml(tmp_path / "sync.yaml", data))
    path = str(out / "nested.properties")
    wait_until(
        lambda: daemon.has_event("poll_cycle") or daemon.proc.poll() is not None,
        120,
        "the first cycle",
    )
    assert daemon.proc.poll() is None, daemon.log_path.read_text()[-2000:]
    assert daemon.has_event("file_written", path=path)
    peak = peak_rss_kib(daemon.proc.pid)
    assert peak < MEMORY_LIMIT_KIB, f"peak RSS {peak} KiB"
    assert daemon.stop() < 10 and daemon.proc.returncode == 0
    assert CANARY not in daemon.log_path.read_text()


def test_a_secret_nested_5000_levels_is_a_render_error_not_a_fetch_error(
    moto: Moto, tmp_path: Path
) -> None:
    moto.seed_use_case()
    moto.create("team/deep", deep_array(5000))
    out = tmp_path / "out"
    data = example_config(out, moto.url)
    data["outputs"] += [
        {"path": str(out / "deep.properties"), "secrets": [{"id": "team/deep"}]},
        # the same value under `as`: written as text, it never needs to be read as JSON
        {"path": str(out / "deep-as-text.json"), "format": "json",
         "secrets": [{"id": "team/deep", "as": "value"}]},
    ]  # fmt: skip
    cfg = write_yaml(tmp_path / "sync.yaml", data)

    result = subprocess.run(
        [PY, "-m", "secretsync", "once", "-c", str(cfg), "--log-format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    logged = events(result.stderr)
    assert not [e for e in logged if e["event"] == "secret_check_failed"]
    failed = [e for e in logged if e["event"] == "output_failed"]
    assert [(e["path"], e["reason"]) for e in failed] == [(str(out / "deep.properties"), "render")]
    assert "nested too deeply" in failed[0]["error"]
    assert json.loads((out / "deep-as-text.json").read_text())["value"] == deep_array(5000)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "client.properties",
        "combined.properties",
        "deep-as-text.json",
        "schema-registry.properties",
    ]
    assert CANARY not in result.stderr + result.stdout
