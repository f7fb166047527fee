"""The rules tests/support/ enforces on the other tests: a missing tool, an unmarked slow test."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import guard
from tests.support.require import in_ci, require

MISSING = "secretsync-no-such-tool-4f1c"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        ("", False),
        ("false", False),
        ("False", False),
        ("0", False),
        ("true", True),
        ("1", True),
        ("yes", True),
        ("gitlab", True),
    ],
)
def test_ci_is_set_when_non_empty_and_not_false_or_0(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_a_missing_tool_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match=f"{MISSING} missing on this machine"):
        require(MISSING)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set: install it with apt"):
        require("sh", MISSING, fix="install it with apt")


def test_a_tool_found_on_path_or_next_to_python_is_its_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert Path(require("sh")).name == "sh"
    monkeypatch.setenv("PATH", str(tmp_path))  # only the venv's bin is left
    python = Path(sys.executable)
    assert Path(require(python.name)) == python


def test_an_unmarked_test_may_not_start_a_subprocess_or_bind_a_port(tmp_path: Path) -> None:
    guard.watch("the-test")
    try:
        with pytest.raises(pytest.fail.Exception, match="the-test starts a subprocess"):
            subprocess.run(["true"], check=False)
        with socket.socket() as tcp, pytest.raises(pytest.fail.Exception, match="binds a AF_INET"):
            tcp.bind(("127.0.0.1", 0))
        with socket.socket() as tcp, pytest.raises(pytest.fail.Exception, match="listens"):
            tcp.listen()
        # a Unix datagram socket (an sd_notify receiver) starts nothing
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as unix:
            unix.bind(str(tmp_path / "notify.sock"))
    finally:
        found = guard.done()
    assert len(found) == 3 and all("is not marked slow" in v for v in found)
