"""The daemon as a real child process: ``secretsync run`` (:class:`Daemon`) and any
other command (:func:`run_cli`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


class Daemon:
    """``secretsync run`` as a real child process; stderr (JSON logs) goes to a file.

    ``wrap`` goes before the command (``unshare …``); ``env`` is added to the environment.
    """

    def __init__(
        self,
        config: Path,
        log: Path,
        *args: str,
        wrap: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [
                *wrap,
                sys.executable,
                "-m",
                "secretsync",
                "run",
                "-c",
                str(config),
                "--log-level",
                "debug",
                *args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"event": "<non-json>", "line": line})
        return out

    def has_event(self, name: str, **fields: Any) -> bool:
        return any(
            e.get("event") == name and all(e.get(k) == v for k, v in fields.items())
            for e in self.events()
        )

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10) -> float:
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout_s)
        return time.monotonic() - started

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


def run_cli(
    *args: str, timeout_s: float = 60, env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m secretsync ARGS``; ``env`` adds variables to ours (None removes one)."""
    child_env = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            child_env.pop(name, None)
        else:
            child_env[name] = value
    return subprocess.run(
        [sys.executable, "-m", "secretsync", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=child_env,
    )
