"""Find and run promtool (Debian package `prometheus`): skip without it locally, fail in CI."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.require import require


def promtool() -> str:
    return require("promtool", fix="install Debian's `prometheus` package")


def run_promtool(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> str:
    """Run promtool; fail the test with its output unless it exits 0. Returns stdout+stderr."""
    result = subprocess.run(
        [promtool(), *args], input=stdin, capture_output=True, timeout=60, cwd=cwd
    )
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def run_rule_tests(directory: Path, rule_files: list[str], tests: list[dict[str, Any]]) -> str:
    """Write a ``promtool test rules`` file of ``tests`` into ``directory`` and run it.

    ``rule_files`` are relative to ``directory`` (may be empty: only
    ``promql_expr_test`` cases then make sense). Fails the test unless every
    case passes; returns promtool's output.
    """
    path = directory / "promtool-tests.yml"
    spec = {"rule_files": rule_files, "evaluation_interval": "1m", "tests": tests}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return run_promtool("test", "rules", path.name, cwd=directory)
