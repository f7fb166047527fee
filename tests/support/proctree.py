"""Identify processes by pid *and* start time, and tell when they are really gone.

A pid alone can be reused, and an orphan that has exited may linger as a
zombie until init reaps it; both would make "is it still running?" lie.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name (field 2) is in parentheses and may contain spaces
    return text[text.rindex(")") + 2 :].split()


@dataclass(frozen=True)
class Proc:
    """One process: its pid and its start time in clock ticks since boot."""

    pid: int
    start_ticks: int

    @classmethod
    def of(cls, pid: int) -> Proc:
        """Identify a running process; AssertionError if there is no such process."""
        fields = _stat_fields(pid)
        assert fields is not None, f"no process {pid}"
        return cls(pid, int(fields[19]))  # field 22: starttime

    def running(self) -> bool:
        """True while this very process exists and has not exited (zombies count as gone)."""
        fields = _stat_fields(self.pid)
        return fields is not None and fields[0] != "Z" and int(fields[19]) == self.start_ticks

    def kill(self) -> None:
        """SIGKILL it if it is still this process (cleanup after a failed test)."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


def children(pid: int) -> set[int]:
    """The pids of the direct children of ``pid`` (all its threads), from /proc."""
    found: set[int] = set()
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                found.update(int(p) for p in (task / "children").read_text().split())
    return found
