"""Find promtool (Debian package `prometheus`): skip without it locally, fail in CI."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing and CI is set: install Debian's `prometheus` package")
        pytest.skip("promtool not installed (CI unset); apt-get install prometheus")
    return path


def run_promtool(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> str:
    """Run promtool; fail the test with its output unless it exits 0. Returns stdout+stderr."""
    result = subprocess.run(
        [promtool(), *args], input=stdin, capture_output=True, timeout=60, cwd=cwd
    )
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output
