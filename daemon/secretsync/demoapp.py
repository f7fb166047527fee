"""A stand-in "Java app" for the demo: writes a pidfile, reloads its files on SIGHUP.

It prints one line per file it (re)loaded: the keys and a short hash of the
content, never a value. Run as ``python -m secretsync.demoapp --pidfile P FILE…``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
import threading
from pathlib import Path

import javaproperties


def describe(path: Path) -> str:
    """``<name> sha256=<8 hex> keys=<k1,k2>`` for a properties file, or why it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"{path.name} unreadable ({exc.strerror})"
    keys = sorted(javaproperties.loads(data.decode("iso-8859-1")))
    return f"{path.name} sha256={hashlib.sha256(data).hexdigest()[:8]} keys={','.join(keys)}"


def main(argv: list[str] | None = None) -> None:
    """Write the pidfile, report each file at start and after every SIGHUP, exit on SIGTERM."""
    parser = argparse.ArgumentParser(prog="secretsync.demoapp")
    parser.add_argument("--pidfile", type=Path, required=True)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)

    hup = threading.Event()
    done = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: hup.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    args.pidfile.write_text(f"{os.getpid()}\n")
    try:
        for path in args.files:
            print(f"START {describe(path)}", flush=True)
        while not done.is_set():
            if hup.wait(0.1):
                hup.clear()
                for path in args.files:
                    print(f"RELOADED {describe(path)}", flush=True)
    finally:
        args.pidfile.unlink(missing_ok=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
