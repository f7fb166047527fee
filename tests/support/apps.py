"""Real child processes standing in for the applications that secretsync tells."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.wait import wait_until

SUPPORT = Path(__file__).resolve().parent
RECORDER = SUPPORT / "recorder.py"
NOTIFY_CMD = SUPPORT / "notify_cmd.py"
BARRIER = "SIGUSR2"


def unique_tag(name: str) -> str:
    """A tag no other process on the machine has in its command line."""
    return f"{name}-{uuid.uuid4().hex[:12]}"


class App:
    """``recorder.py`` as a child process in its own session; see that script."""

    def __init__(self, workdir: Path, name: str, files: Sequence[Path] = ()) -> None:
        self.tag = unique_tag(name)
        self.record = workdir / f"{self.tag}.signals"
        self.pidfile = workdir / f"{self.tag}.pid"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(RECORDER),
                str(self.record),
                str(self.pidfile),
                self.tag,
                *map(str, files),
            ],
            start_new_session=True,
        )
        wait_until(self.pidfile.exists, 15, f"{name} to install its signal handlers")

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def regex(self) -> str:
        """A `process` regex that matches this app's command line and no other."""
        return rf"recorder\.py .* {re.escape(self.tag)}( |$)"

    def records(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]

    def signals(self) -> list[dict[str, Any]]:
        """Records of every signal except the test's own barriers."""
        return [r for r in self.records() if r["signal"] != BARRIER]

    def barrier(self) -> list[dict[str, Any]]:
        """Every signal received before now, certainly recorded.

        Sends SIGUSR2 and waits until it is recorded. Linux delivers pending
        standard signals lowest number first, so a SIGHUP (1) or SIGUSR1 (10)
        sent earlier is recorded before this SIGUSR2 (12).
        """
        before = sum(r["signal"] == BARRIER for r in self.records())
        self.proc.send_signal(signal.SIGUSR2)
        wait_until(
            lambda: sum(r["signal"] == BARRIER for r in self.records()) > before,
            10,
            "the barrier signal to be recorded",
        )
        return self.signals()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


class Apps:
    """Starts :class:`App` processes in ``workdir``; :meth:`stop_all` stops every one."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[App] = []

    def __call__(self, name: str, files: Sequence[Path] = ()) -> App:
        app = App(self.workdir, name, files)
        self.started.append(app)
        return app

    def stop_all(self) -> None:
        for app in self.started:
            app.stop()


def kill_recorded(pidsfile: Path) -> None:
    """Kill the pids a `hang` command recorded, if a failed test left them running.

    Only processes that still run our helper are touched (a pid may have been reused).
    """
    if not pidsfile.exists():
        return
    for pid in map(int, pidsfile.read_text().split()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"notify_cmd.py" in cmdline or b"signal.pause()" in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def is_dead(pid: int) -> bool:
    """True if ``pid`` is gone or a zombie (killed, not yet reaped by its new parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in {"Z", "X"}
