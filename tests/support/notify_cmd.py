"""Commands for `command` notify targets in the tests.

notify_cmd.py record FILE [ARG ...]
    append {"argv": [...], "changed": $SECRETSYNC_CHANGED_FILES,
    "target": $SECRETSYNC_TARGET} as a JSON line to FILE, exit 0
notify_cmd.py fail CODE LINES COUNTFILE
    append a line to COUNTFILE (one per run), print LINES lines of output, exit CODE
notify_cmd.py hang PIDSFILE
    start a grandchild in the same process group, write both pids to PIDSFILE
    (one per line), then wait forever
notify_cmd.py detach PIDSFILE
    start a grandchild that inherits stdout/stderr and waits forever, write both
    pids to PIDSFILE, print a line and exit 0 (the grandchild keeps the output open)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path


def main() -> int:
    mode, *args = sys.argv[1:]
    if mode == "record":
        entry = {
            "argv": args[1:],
            "changed": os.environ.get("SECRETSYNC_CHANGED_FILES"),
            "target": os.environ.get("SECRETSYNC_TARGET"),
        }
        with open(args[0], "a") as fh:
            fh.write(json.dumps(entry) + "\n")
        return 0
    if mode == "fail":
        code, lines, countfile = int(args[0]), int(args[1]), args[2]
        with open(countfile, "a") as fh:
            fh.write("run\n")
        for i in range(lines):
            print(f"failing on purpose, line {i}", file=sys.stderr if i % 2 else sys.stdout)
        return code
    if mode in {"hang", "detach"}:
        child = subprocess.Popen(
            [sys.executable, "-c", "import signal\nwhile True: signal.pause()"]
        )
        tmp = args[0] + ".tmp"
        Path(tmp).write_text(f"{os.getpid()}\n{child.pid}\n")
        os.replace(tmp, args[0])
        if mode == "detach":
            print("leader done, grandchild left running")
            return 0
        while True:
            signal.pause()
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main())
