"""One rule for a tool a test needs: skipped when it is missing here, a failure in CI.

CI must not lose a test silently because its machine lacks a tool, so when ``CI`` is
set (non-empty and not ``false``/``0``, as GitHub Actions, GitLab and .ci/run set it)
a missing tool fails the test and says what to install.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """Whether ``CI`` is set: non-empty and not ``false`` or ``0`` (any case)."""
    return os.environ.get("CI", "").strip().lower() not in {"", "false", "0"}


def unavailable(why: str, fix: str) -> NoReturn:
    """Skip the test because of ``why``; fail it instead in CI, saying ``fix``."""
    if in_ci():
        pytest.fail(f"{why}, and CI is set: {fix}")
    pytest.skip(f"{why} (CI unset)")


def which(tool: str) -> str | None:
    """Path of ``tool`` on PATH or next to this interpreter (the venv's bin), else None."""
    return shutil.which(tool) or shutil.which(tool, path=str(Path(sys.executable).parent))


def require(tool: str, *more: str, fix: str = "") -> str:
    """Path of ``tool`` once ``tool`` and every one of ``more`` are found (:func:`which`).

    A missing one skips the test locally and fails it in CI (:func:`unavailable`);
    ``fix`` says how to install what is missing (default: install it).
    """
    missing = [name for name in (tool, *more) if which(name) is None]
    if missing:
        unavailable(f"{', '.join(missing)} missing on this machine", fix or "install it")
    found = which(tool)
    assert found is not None
    return found
