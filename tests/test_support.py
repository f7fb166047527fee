"""The rules tests/support/ enforces on the other tests: a missing tool, an unmarked slow test."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import guard, zygote
from tests.support.require import in_ci, require
from tests.support.wait import wait_until

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


def _environ(pid: int) -> set[bytes]:
    """The environment process ``pid`` was exec'd with."""
    return set(filter(None, Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")))


def _proc_state(pid: int) -> dict[str, object]:
    """What a process was started with: signal masks, session, cwd and its descriptors
    (socket/pipe inode numbers left out: they differ between any two)."""
    status = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    fds = {}
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        fds[int(fd)] = re.sub(r":\[\d+\]$", "", target)
    return {
        **{mask: status[mask] for mask in ("SigBlk", "SigIgn", "SigCgt")},
        "session leader": os.getsid(pid) == pid,
        "cwd": os.readlink(f"/proc/{pid}/cwd"),
        "fds": fds,
    }


@pytest.mark.slow
def test_a_child_of_the_zygote_starts_as_an_exec_would(tmp_path: Path) -> None:
    # both daemons block opening a FIFO config: the same instant of start-up, with
    # their signal handlers in place and nothing read yet
    fifo = tmp_path / "sync.yaml"
    os.mkfifo(fifo)
    log = tmp_path / "log"
    # the zygote's own: /proc/PID/environ shows the environment a process was exec'd
    # with, for a forked child the zygote's (the child's os.environ is the request's)
    env = zygote.environment()
    with log.open("wb") as out:
        forked = zygote.spawn(
            ["run", "-c", str(fifo)],
            env=env,
            stdout=out.fileno(),
            stderr=out.fileno(),
            new_session=True,
        )
        assert forked is not None
        execd = subprocess.Popen(
            [sys.executable, "-m", "secretsync", "run", "-c", str(fifo)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    try:

        def blocked(pid: int) -> bool:
            wchan = Path(f"/proc/{pid}/wchan").read_text()
            return wchan == "wait_for_partner"  # open() of a FIFO waiting for a writer

        wait_until(lambda: blocked(forked.pid) and blocked(execd.pid), 30, "both at the FIFO")
        state, expected = _proc_state(forked.pid), _proc_state(execd.pid)
        assert _environ(forked.pid) ^ _environ(execd.pid) == set()
        assert state == expected
        # an empty config: both refuse it the same way
        os.close(os.open(fifo, os.O_WRONLY))
        assert forked.wait(timeout=30) == execd.wait(timeout=30) == 2
    finally:
        for proc in (forked, execd):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.slow
def test_a_child_of_the_zygote_reports_its_exit_like_popen(tmp_path: Path) -> None:
    fifo = tmp_path / "sync.yaml"
    os.mkfifo(fifo)
    devnull = os.open(os.devnull, os.O_WRONLY)
    child = zygote.spawn(
        ["run", "-c", str(fifo)],
        env=dict(os.environ),
        stdout=devnull,
        stderr=2,
    )
    os.close(devnull)
    assert child is not None
    assert child.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=0.05)
    child.kill()
    assert child.wait(timeout=10) == -signal.SIGKILL
    assert child.poll() == -signal.SIGKILL
    child.kill()  # after the exit was read: nothing is sent, as with Popen
    # a start-up variable the zygote cannot honour makes the caller exec instead
    assert (
        zygote.spawn(
            ["--version"], env={**os.environ, "PYTHONWARNINGS": "error"}, stdout=1, stderr=2
        )
        is None
    )


def test_a_fork_from_the_zygote_counts_as_a_subprocess_for_an_unmarked_test() -> None:
    guard.watch("the-test")
    try:
        with pytest.raises(pytest.fail.Exception, match="the-test starts a subprocess"):
            guard.started("starts a subprocess ('secretsync run' via the zygote)")
    finally:
        assert len(guard.done()) == 1
