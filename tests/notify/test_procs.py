"""Pidfiles and /proc command lines: real hostile files, real processes, a real /proc."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from secretsync.notify import procs
from tests.support.hostile import (
    BAD_PIDFILES,
    CUBIC,
    QUADRATIC,
    LongCmdline,
    bad_pidfile,
    java_flood,
)
from tests.support.ticker import Ticker

BUDGET_REASON = "process scan exceeded its time budget (1.5s)"
PROCS_FILE = str(Path(procs.__file__).resolve())


def call_bounded(fn: Callable[[], Any], timeout_s: float = 10) -> Any:
    """``fn()``'s result or exception, from a thread; fails if it has not returned in time."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert outcome, f"still blocked after {timeout_s}s"
    return outcome[0]


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` (from /proc/PID/stat), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # after "(comm)": state, then ppid


def scan_children() -> list[int]:
    """Pids of this process's scan children (run from this source tree) that still exist;
    another pytest-xdist worker's are not counted."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and parent_of(int(entry.name)) == os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if PROCS_FILE.encode() in cmdline.split(b"\0"):
                found.append(int(entry.name))
    return found


# -- pidfiles ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(BAD_PIDFILES))
def test_a_bad_pidfile_is_refused_promptly_with_a_reason(kind: str, tmp_path: Path) -> None:
    with bad_pidfile(kind, tmp_path) as path:
        # a FIFO used to block the reading thread forever: bounded, whatever happens
        raised = call_bounded(lambda: procs.read_pidfile(path))
    assert isinstance(raised, procs.PidfileError), raised
    assert BAD_PIDFILES[kind].reason in raised.reason
    content = BAD_PIDFILES[kind].content
    if content and len(content.strip()) > 1:
        assert content.strip().decode() not in str(raised)  # never the file's content


def test_a_pidfile_with_surrounding_whitespace_gives_its_pid(tmp_path: Path) -> None:
    path = tmp_path / "app.pid"
    path.write_bytes(b" \t4242\r\n")
    assert procs.read_pidfile(path) == 4242


def test_a_symlinked_directory_above_the_pidfile_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "app.pid").write_text("4242\n")
    (tmp_path / "run").symlink_to("real")  # e.g. /var/run -> /run
    assert procs.read_pidfile(tmp_path / "run" / "app.pid") == 4242


def test_a_missing_pidfile_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        procs.read_pidfile(tmp_path / "nope.pid")


def test_pid_max_is_the_kernels() -> None:
    assert procs.pid_max() == int(Path("/proc/sys/kernel/pid_max").read_text())


def test_the_largest_pid_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "app.pid"
    path.write_text(f"{procs.pid_max()}\n")
    assert procs.read_pidfile(path) == procs.pid_max()


# -- command lines -----------------------------------------------------------------------


@pytest.mark.slow
def test_read_cmdline_keeps_at_most_64_KiB_of_a_huge_command_line() -> None:
    with LongCmdline(java_flood()) as hostile:
        assert hostile.cmdline_bytes() > 400_000
        text = procs.read_cmdline(hostile.pid)
    assert text is not None
    assert 60_000 < len(text) <= procs.CMDLINE_LIMIT_BYTES == 64 * 1024
    assert text.count("java") > 10_000 and "\0" not in text


@pytest.mark.slow
def test_read_cmdline_of_a_process_that_is_gone_is_none() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert procs.read_cmdline(gone.pid) is None


@pytest.mark.slow
async def test_a_match_in_the_first_64_KiB_of_a_long_command_line_is_found() -> None:
    tag = f"KafkaApp-{os.urandom(6).hex()}"
    filler = "-Dfiller=" + "x" * 100_000  # a 100 KB classpath-like argument after the tag
    with LongCmdline([tag, filler]) as app:
        assert app.cmdline_bytes() > 100_000
        scan = await procs.scan_processes(rf"{tag} -Dfiller=x+", own_pid=os.getpid())
    assert scan == procs.Scan(pids=(app.pid,))


@pytest.mark.slow
async def test_a_match_beyond_64_KiB_is_not_seen(tmp_path: Path) -> None:
    tag = f"KafkaApp-{os.urandom(6).hex()}"
    with LongCmdline(["-Dfiller=" + "x" * 100_000, tag]) as app:
        found = await procs.scan_processes(re.escape(tag), own_pid=os.getpid())
        assert found.error is None and app.pid not in found.pids  # documented truncation
        single = await procs.scan_processes(re.escape(tag), own_pid=os.getpid(), pid=app.pid)
    assert single == procs.Scan(pids=(), gone=False)


@pytest.mark.slow
async def test_the_scan_excludes_our_pid_and_its_own_child() -> None:
    ours = procs.read_cmdline(os.getpid())
    assert ours is not None
    # matches this test process, every scan child of this tree, and the decoy
    pattern = rf"^{re.escape(ours)}$|{re.escape(PROCS_FILE)}$"
    with LongCmdline([PROCS_FILE]) as decoy:
        scan = await procs.scan_processes(pattern, own_pid=os.getpid())
    # other pytest-xdist workers (this very command line) and their scan children match
    # too: what matters is that neither this process nor a child of it but the decoy is in
    assert scan.error is None and decoy.pid in scan.pids and os.getpid() not in scan.pids
    assert [p for p in scan.pids if p != decoy.pid and parent_of(p) == os.getpid()] == []


@pytest.mark.slow
async def test_the_scan_examines_at_most_max_entries(tmp_path: Path) -> None:
    for pid in range(100, 150):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"java\0-jar\0app.jar\0")
    (tmp_path / "self").mkdir()  # not a pid: neither examined nor counted
    scan = await procs.scan_processes(
        "app\\.jar", own_pid=os.getpid(), proc_root=tmp_path, max_entries=10
    )
    assert (len(scan.pids), scan.capped, scan.error) == (10, True, None)
    assert set(scan.pids) <= set(range(100, 150))
    full = await procs.scan_processes("app\\.jar", own_pid=os.getpid(), proc_root=tmp_path)
    assert full == procs.Scan(pids=tuple(range(100, 150)))


@pytest.mark.slow
async def test_an_unreadable_proc_root_is_an_error(tmp_path: Path) -> None:
    scan = await procs.scan_processes("x", own_pid=os.getpid(), proc_root=tmp_path / "nope")
    assert scan.pids == ()
    assert scan.error is not None and scan.error.startswith("cannot scan")


@pytest.mark.slow
async def test_the_single_pid_match_of_a_gone_process_says_so() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    scan = await procs.scan_processes("python", own_pid=os.getpid(), pid=gone.pid)
    assert scan == procs.Scan(pids=(), gone=True)


@pytest.mark.parametrize("pattern", [QUADRATIC, CUBIC], ids=["quadratic", "cubic"])
@pytest.mark.slow
async def test_a_hostile_command_line_never_blocks_the_loop_and_the_scan_is_bounded(
    pattern: str,
) -> None:
    with LongCmdline(java_flood()) as hostile:
        assert hostile.cmdline_bytes() > 400_000
        async with Ticker() as ticker:
            scan = await asyncio.wait_for(
                procs.scan_processes(pattern, own_pid=os.getpid(), timeout_s=1.5), 15
            )
    assert ticker.ticks >= 20  # the loop ran while the scan did (~0 if it was held)
    assert hostile.pid not in scan.pids
    if pattern == CUBIC:  # far beyond the budget even on 64 KiB
        assert scan == procs.Scan(error=BUDGET_REASON)
    else:  # ~2 s on 64 KiB: done, or over the budget
        assert scan.error in {None, BUDGET_REASON}
    assert scan_children() == []  # the child was killed and reaped


@pytest.mark.slow
async def test_the_single_pid_match_is_bounded_too() -> None:
    with LongCmdline(java_flood()) as hostile:
        async with Ticker() as ticker:
            scan = await asyncio.wait_for(
                procs.scan_processes(CUBIC, own_pid=os.getpid(), pid=hostile.pid, timeout_s=2),
                15,
            )
    assert ticker.ticks >= 10
    assert scan == procs.Scan(error="process scan exceeded its time budget (2s)")
    assert scan_children() == []
