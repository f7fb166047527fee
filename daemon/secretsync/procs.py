"""Find the processes a signal target names: pidfiles and /proc command lines."""

from __future__ import annotations

import re
from pathlib import Path

PROC_ROOT = Path("/proc")


def read_cmdline(pid: int) -> str | None:
    """``/proc/<pid>/cmdline`` with arguments joined by spaces; None if gone or empty.

    Kernel threads and zombies have an empty command line and give None.
    """
    try:
        raw = (PROC_ROOT / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    args = raw.rstrip(b"\0").split(b"\0")
    text = " ".join(arg.decode("utf-8", "replace") for arg in args)
    return text or None


def find_processes(pattern: str, *, own_pid: int) -> list[int]:
    """Pids whose command line matches ``pattern`` (``re.search``), ours excluded, ascending."""
    regex = re.compile(pattern)
    pids = []
    for entry in PROC_ROOT.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == own_pid:
            continue  # our own command line may well match (e.g. a config path)
        cmdline = read_cmdline(pid)
        if cmdline is not None and regex.search(cmdline):
            pids.append(pid)
    return sorted(pids)


def read_pidfile(path: Path) -> int:
    """The pid in ``path``. Raises FileNotFoundError, or ValueError for anything but a pid > 0."""
    text = path.read_text(encoding="ascii", errors="replace").strip()
    if not text.isdigit() or int(text) <= 0:
        # 0 or a negative number would signal a whole process group, or everything
        raise ValueError("the pidfile does not hold a positive pid")
    return int(text)
