"""The boundaries of ARCHITECTURE.md hold, and the check that enforces them can fail.

``make lint`` runs import-linter with the contracts in pyproject.toml. These
tests run it on the tree as it is (kept) and on a copy with one forbidden
import added per contract (broken), so a contract that checks nothing would
be caught. Rules import-linter cannot express (only the CLI exits, package
``__init__`` files are empty) are checked on the syntax tree.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.require import unavailable

PACKAGE = REPO / "daemon" / "secretsync"
LINT_IMPORTS = REPO / ".venv-tools" / "bin" / "lint-imports"  # `make .venv-tools/.installed`
# programs of their own, run as children (python -m / a script path): they exit as programs do
CHILD_PROGRAMS = {"demo/app.py", "notify/procs.py"}


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        unavailable("import-linter's venv is missing", "run `make .venv-tools/.installed`")
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(REPO / "pyproject.toml")],
        capture_output=True,
        text=True,
        env=env,
        cwd=package_parent,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(REPO / "daemon")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("output/render.py", "import secretsync.sync.syncer", "Layers"),
        ("config/model.py", "import asyncio", "The pure core"),
        ("sync/syncer.py", "import aioboto3", "Only source and push talk to AWS"),
        ("serve/status.py", "import prometheus_client", "Only metrics imports prometheus_client"),
        ("notify/targets.py", "import structlog", "Only logs imports structlog"),
    ],
)
@pytest.mark.slow
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    copy = tmp_path / "secretsync"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(row.startswith(contract) for row in broken), result.stdout[-3000:]


def _exits(tree: ast.AST) -> list[int]:
    """Lines that end the process: sys.exit, os._exit, exit(), quit(), raise SystemExit."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = getattr(getattr(func, "value", None), "id", None)
            if (owner, name) in {("sys", "exit"), ("os", "_exit")} or (
                owner is None and name in {"exit", "quit"}
            ):
                lines.append(node.lineno)
        elif isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if getattr(exc, "id", None) == "SystemExit":
                lines.append(node.lineno)
    return lines


def test_only_the_cli_exits() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in {"cli.py", "__main__.py"} | CHILD_PROGRAMS:
            continue
        found += [f"{rel}:{n}" for n in _exits(ast.parse(path.read_text()))]
    assert found == []


def test_every_subpackage_init_is_empty() -> None:
    # importing a package must cost nothing: the light commands stay light
    inits = sorted(PACKAGE.glob("*/__init__.py"))
    assert len(inits) >= 9
    assert {p.parent.name: p.read_text() for p in inits} == {p.parent.name: "" for p in inits}


def test_the_folder_list_is_the_architecture() -> None:
    # ARCHITECTURE.md's package map names every package and leaf module there is
    doc = (REPO / "ARCHITECTURE.md").read_text()
    for entry in sorted(PACKAGE.iterdir()):
        if entry.name.startswith("_") or entry.name == "py.typed":
            continue
        name = entry.name if entry.is_dir() else entry.stem
        assert f"`{name}" in doc, f"ARCHITECTURE.md does not describe {entry.name}"
