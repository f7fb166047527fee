"""`secretsync demo` end to end: files, a rotation, SIGHUP to the app, metrics, Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import free_port
from tests.support.wait import wait_until


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_end_to_end(tmp_path: Path) -> None:
    port = free_port()
    out_path = tmp_path / "demo.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "secretsync",
                "demo",
                "--dir",
                str(tmp_path / "d"),
                "--rotate-every",
                "1s",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )
    try:
        timeline = re.compile(
            r"rotated \S+ \(version \w+\) → (\S+) rewritten \+[\d.]+s → app signalled"
        )
        wait_until(lambda: len(timeline.findall(out_path.read_text())) >= 2, 60, "two rotations")
        text = out_path.read_text()
        assert {"client.properties", "schema-registry.properties"} <= set(timeline.findall(text))
        for name in ("client.properties", "schema-registry.properties", "combined.properties"):
            assert (tmp_path / "d" / "out" / name).exists()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        assert "secretsync_file_writes_total" in metrics
        daemon_pid = int(re.search(r"secretsync run started \(pid (\d+)", text).group(1))  # type: ignore[union-attr]
        app_pid = int(re.search(r"stand-in Java app started \(pid (\d+)", text).group(1))  # type: ignore[union-attr]

        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        assert time.monotonic() - started < 8
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out_path.read_text()
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    assert "stopped: daemon, app and local Secrets Manager are down" in text
    assert not alive(daemon_pid) and not alive(app_pid)
    assert not (tmp_path / "d" / "app.pid").exists()
    # the demo's secrets are random; the app only ever prints keys and hashes
    assert "password=" not in text and "PlainLoginModule" not in text


def test_demo_without_moto_says_how_to_install_it(tmp_path: Path) -> None:
    # a real interpreter in which `import moto` fails, as without the demo extra
    code = (
        "import sys; sys.modules['moto'] = None; sys.modules['moto.server'] = None\n"
        "from secretsync.cli import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "demo", "--dir", str(tmp_path / "d"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "pip install 'secretsync-sidecar[demo]'" in result.stderr
    assert "Traceback" not in result.stderr
