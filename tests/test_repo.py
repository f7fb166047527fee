"""The repository itself: what a fresh clone gets is what every machine gets.

A tracked symlink to a path on one machine (``bench/.venv-aws`` pointed at
``/tmp/awsvenv``) broke ``make bench`` on every other clone, and ``make
clean`` deleted the tracked file. Nothing tracked may be a symlink, and no
tracked text may name the checkout's own location or a developer's home.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO

# the checkout's own location, and homes: paths that exist on one machine only
MACHINE_PATHS = (str(REPO) + "/", "/root/", "/work/")
ALLOWED_EXAMPLES = {"tests/e2e/test_demo.py", "tests/test_repo.py"}  # fake paths as test data


def tracked() -> list[tuple[str, str]]:
    """(mode, path) of every file in the index."""
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-s", "-z"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = []
    for entry in filter(None, out.split("\0")):
        meta, path = entry.split("\t", 1)
        rows.append((meta.split()[0], path))
    return rows


@pytest.mark.slow
def test_no_tracked_file_is_a_symlink() -> None:
    links = [path for mode, path in tracked() if mode == "120000"]
    assert links == [], f"tracked symlinks (machine-specific): {links}"


@pytest.mark.slow
def test_no_tracked_file_names_a_machine_path() -> None:
    found = []
    for mode, path in tracked():
        if mode == "120000" or path in ALLOWED_EXAMPLES:
            continue
        try:
            text = (REPO / path).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        found += [f"{path}: {p}" for p in MACHINE_PATHS if p in text]
    assert found == []


@pytest.mark.slow
def test_gitignore_patterns_for_bench_venvs_match_symlinks_too() -> None:
    # "dir/" matches directories only: a symlink of that name slipped through once
    ignored = (REPO / ".gitignore").read_text().splitlines()
    for venv in ("bench/.venv-aws", "bench/.venv-prod"):
        assert venv in ignored, venv
        probe = subprocess.run(
            ["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", venv],
            check=False,
        )
        assert probe.returncode == 0, f"{venv} is not ignored"


@pytest.mark.slow
def test_the_checkout_has_no_untracked_symlink_named_by_the_makefile() -> None:
    # make clean removes these: it must never remove something tracked
    makefile = (REPO / "Makefile").read_text()
    clean = next(line for line in makefile.splitlines() if line.startswith("\trm -rf"))
    tracked_paths = {path for _mode, path in tracked()}
    for target in clean.split()[2:]:
        target = target.replace("$(VENV)", ".venv").replace("$(AWS_VENV)", "bench/.venv-aws")
        target = target.replace("$(PROD_VENV)", "bench/.venv-prod")
        assert not any(
            p == target or p.startswith(target.rstrip("/") + "/") for p in tracked_paths
        ), f"make clean removes tracked {target}"
        assert not Path(target).is_absolute()


@pytest.mark.slow
def test_the_wheel_carries_the_license(tmp_path: Path) -> None:
    license_text = (REPO / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0" in license_text
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), "."],
        cwd=REPO,
        check=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith("/licenses/LICENSE")]
        assert names, zf.namelist()
        assert zf.read(names[0]).decode() == license_text
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith("METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata


def release_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "packaging" / "release" / "check_version.py"), *args],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.slow
def test_the_release_tag_must_name_the_package_version_with_a_dated_changelog_entry() -> None:
    from secretsync import __version__  # noqa: PLC0415

    ok = release_check(f"v{__version__}", "--notes")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip(), "the release notes are the CHANGELOG entry's body"
    assert "## [" not in ok.stdout
    major, minor, patch = __version__.split(".")
    wrong = release_check(f"v{major}.{minor}.{int(patch) + 1}")
    assert wrong.returncode == 1
    assert f"but the package is version {__version__}" in wrong.stderr
    assert release_check("1.2.3").returncode == 1  # no "v"


def test_the_release_workflow_publishes_what_readme_names() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as True
    assert on == {"push": {"tags": ["v[0-9]+.[0-9]+.[0-9]+"]}}
    jobs = workflow["jobs"]
    assert jobs["pypi"]["permissions"] == {"id-token": "write"}, "trusted publishing"
    build = next(s for s in jobs["image"]["steps"] if s.get("id") == "build")["with"]
    assert build["platforms"] == "linux/amd64,linux/arm64"
    assert build["sbom"] is True
    assert any("cosign sign" in s.get("run", "") for s in jobs["image"]["steps"])
    assert set(jobs["release"]["needs"]) == {"dist", "pypi", "image"}
