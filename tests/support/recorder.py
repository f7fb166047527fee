"""Stand-in for the Java app: traps signals and records each with the watched files' content.

Usage: recorder.py RECORD PIDFILE TAG [FILE ...]

Once its handlers are installed it writes PIDFILE (atomically), so a test can
wait for that file. Every SIGHUP, SIGUSR1 or SIGUSR2 appends one JSON line
``{"signal": "SIGHUP", "files": {path: text or null}}`` to RECORD, with the
content the watched files have at that moment. TAG only makes the command line
unique, for `process` regex targets. Exits on SIGTERM, and when the test
process that started it dies.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from pathlib import Path

TRAPPED = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux for SIGKILL when the test process dies, so a crashed run leaves nothing."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main() -> None:
    record, pidfile, _tag, *files = sys.argv[1:]
    parent = os.getppid()
    die_with_parent()
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(1)

    def on_signal(signum: int, _frame: object) -> None:
        contents: dict[str, str | None] = {}
        for name in files:
            try:
                contents[name] = Path(name).read_text()
            except OSError:
                contents[name] = None
        line = json.dumps({"signal": signal.Signals(signum).name, "files": contents})
        with open(record, "a") as fh:
            fh.write(line + "\n")

    for signum in TRAPPED:
        signal.signal(signum, on_signal)
    tmp = pidfile + ".tmp"
    Path(tmp).write_text(f"{os.getpid()}\n")
    os.replace(tmp, pidfile)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
