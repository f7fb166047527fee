"""`secretsync demo` end to end: files, a rotation, SIGHUP to the app, metrics, and every way
it can end (signals, a closed terminal, a child dying), each of which must stop all it started."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from secretsync.demo.command import Demo, run_demo, shown
from tests.support.demorun import STOPPED, TIMELINE_RE, demo_argv, demo_env, running_demo
from tests.support.motoserver import free_port
from tests.support.paths import REPO
from tests.support.terminal import Terminal
from tests.support.wait import wait_until


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_demo_end_to_end(tmp_path: Path) -> None:
    port = free_port()
    out_path = tmp_path / "demo.out"
    with out_path.open("w") as out:
        # run from tmp_path with the default --dir, as `make demo` does from the checkout
        proc = subprocess.Popen(
            [sys.executable, *demo_argv("--rotate-every", "1s", "--port", str(port))],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=demo_env(),
            cwd=tmp_path,
            text=True,
        )
    demo_dir = tmp_path / "secretsync-demo"
    try:
        wait_until(lambda: len(TIMELINE_RE.findall(out_path.read_text())) >= 2, 60, "two rotations")
        text = out_path.read_text()
        assert {"client.properties", "schema-registry.properties"} <= set(TIMELINE_RE.findall(text))
        for name in ("client.properties", "schema-registry.properties", "combined.properties"):
            assert (demo_dir / "out" / name).exists()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        assert "secretsync_file_writes_total" in metrics
        daemon_pid = int(re.search(r"secretsync run started \(pid (\d+)", text).group(1))  # type: ignore[union-attr]
        app_started = re.search(r"stand-in app started \(pid (\d+)\): a Python script", text)
        app_pid = int(app_started.group(1))  # type: ignore[union-attr]

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
    # paths under the current directory are shown relative to it, as in the README
    assert "● wrote secretsync-demo/sync.yaml (from sync.yaml.example)\n" in text
    assert f"(pid {daemon_pid}, logs: secretsync-demo/secretsync.log)\n" in text
    for name in ("client.properties", "schema-registry.properties", "combined.properties"):
        assert f"\n    secretsync-demo/out/{name}  mode 0600\n" in text
    assert STOPPED in text
    assert not alive(daemon_pid) and not alive(app_pid)
    assert not (demo_dir / "app.pid").exists()
    # the demo's secrets are random; the app only ever prints keys and hashes
    assert "password=" not in text and "PlainLoginModule" not in text


@pytest.mark.parametrize(
    "signum",
    # SIGINT: the end-to-end test; SIGHUP: the closed-terminal test below
    [signal.SIGTERM, signal.SIGKILL],
    ids=lambda s: signal.Signals(s).name,
)
def test_demo_stops_everything_it_started_on_a_signal(tmp_path: Path, signum: int) -> None:
    elsewhere = tmp_path / "cwd"  # the demo directory is not under the current directory
    elsewhere.mkdir()
    port = free_port()
    demo_dir = tmp_path.resolve() / "d"
    args = ("--dir", str(demo_dir), "--rotate-every", "1s", "--port", str(port))
    with running_demo(*args, output=tmp_path / "demo.out", cwd=elsewhere) as demo:
        demo.wait_started()
        text = demo.wait_rotations(1)
        demo.proc.send_signal(signum)
        demo.wait_all_gone()
        text = demo.read()
    assert not listening(demo.emulator_port) and not listening(port)
    # the app stopped cleanly (SIGTERM), even when the demo itself was SIGKILLed
    assert not (demo_dir / "app.pid").exists()
    # outside the current directory, paths are shown absolute
    assert f"● wrote {demo_dir}/sync.yaml (from sync.yaml.example)\n" in text
    assert f"\n    {demo_dir}/out/client.properties  mode 0600\n" in text
    if signum == signal.SIGKILL:
        assert demo.proc.returncode == -signal.SIGKILL
    else:
        assert demo.proc.returncode == 0, text
        assert STOPPED in text
        assert "Traceback" not in text


def test_demo_stops_everything_when_its_terminal_is_closed(tmp_path: Path) -> None:
    terminal = Terminal()
    args = ("--dir", "d", "--rotate-every", "1s", "--port", str(free_port()))
    try:
        with running_demo(*args, terminal=terminal, cwd=tmp_path) as demo:
            demo.wait_started()
            demo.wait_rotations(1)
            terminal.close()  # the kernel sends SIGHUP; writes to the terminal now fail (EIO)
            demo.wait_all_gone()
    finally:
        terminal.close()
    # a clean stop: no crash on the dead terminal, no exit 120 from flushing it at exit
    assert demo.proc.returncode == 0
    assert not listening(demo.emulator_port)
    assert not (tmp_path / "d" / "app.pid").exists()


@pytest.mark.parametrize(
    ("victim", "described"),
    [
        (
            "daemon",
            "the daemon (secretsync run, pid {pid}) stopped unexpectedly: killed by SIGKILL",
        ),
        ("app", "the stand-in app (pid {pid}) stopped unexpectedly: killed by SIGKILL"),
    ],
)
def test_demo_stops_everything_when_a_child_dies(
    tmp_path: Path, victim: str, described: str
) -> None:
    args = ("--dir", "d", "--rotate-every", "1s", "--port", str(free_port()))
    with running_demo(*args, output=tmp_path / "demo.out", cwd=tmp_path) as demo:
        demo.wait_started()
        pid = demo.children[victim].pid
        os.kill(pid, signal.SIGKILL)
        demo.wait_all_gone()
        text = demo.read()
    assert demo.proc.returncode == 1, text
    assert f"secretsync demo: {described.format(pid=pid)}" in text
    if victim == "daemon":
        assert "; its log: d/secretsync.log\n" in text
    assert STOPPED in text
    assert "Traceback" not in text
    assert not listening(demo.emulator_port)
    assert not (tmp_path / "d" / "app.pid").exists()


def test_demo_keeps_up_with_a_very_short_period(tmp_path: Path) -> None:
    # rotations simply follow each other; waits are bounded by the poll interval, not the period
    args = ("--dir", "d", "--rotate-every", "50ms", "--port", str(free_port()))
    with running_demo(*args, output=tmp_path / "demo.out", cwd=tmp_path) as demo:
        demo.wait_started()
        demo.wait_rotations(2)
        demo.proc.send_signal(signal.SIGINT)
        demo.wait_all_gone()
        text = demo.read()
    assert demo.proc.returncode == 0, text
    assert "rotating a secret every 0.05s" in text


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("0", 'argument --rotate-every: must be more than 0; expected a duration such as "500ms"'),
        ("abc", 'argument --rotate-every: expected a duration such as "500ms", "30s", "5m"'),
    ],
)
def test_rotate_every_is_checked_by_the_command_line(tmp_path: Path, value: str, says: str) -> None:
    result = subprocess.run(
        [sys.executable, *demo_argv("--dir", str(tmp_path / "d"), "--rotate-every", value)],
        capture_output=True,
        text=True,
        timeout=60,
        env=demo_env(),
    )
    assert result.returncode == 2
    assert result.stderr.startswith("usage: secretsync demo ")
    assert says in result.stderr
    assert "Traceback" not in result.stderr and "_positive_duration" not in result.stderr
    assert result.stdout == "" and not (tmp_path / "d").exists()


@pytest.mark.parametrize("period_s", [0.0, -1.0, float("nan"), float("inf")])
def test_run_demo_rejects_a_period_that_is_not_positive_and_finite(
    tmp_path: Path, period_s: float
) -> None:
    with pytest.raises(ValueError, match="rotate_every_s"):
        Demo(tmp_path / "d", rotate_every_s=period_s)
    with pytest.raises(ValueError, match="rotate_every_s"):
        run_demo(tmp_path / "d", rotate_every_s=period_s, port=free_port())
    assert not (tmp_path / "d").exists()


def test_shown_paths_are_relative_under_the_current_directory() -> None:
    cwd = Path("/home/me/project")
    assert shown(cwd / "secretsync-demo" / "out" / "client.properties", cwd) == (
        "secretsync-demo/out/client.properties"
    )
    assert shown(Path("/tmp/demo/sync.yaml"), cwd) == "/tmp/demo/sync.yaml"
    assert shown(Path("/home/me/project-2/sync.yaml"), cwd) == "/home/me/project-2/sync.yaml"
    assert shown(cwd, cwd) == "."
    assert shown(Path("/x/sync.yaml"), None) == "/x/sync.yaml"  # no current directory


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


def test_make_demo_passes_port_through(tmp_path: Path) -> None:
    # `make demo PORT=N` runs the demo on port N: with N taken, the demo names N and exits 2
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    script = venv / "bin" / "secretsync"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m secretsync "$@"\n')
    script.chmod(0o755)
    (venv / ".installed-demo").touch()  # newer than pyproject.toml: nothing to install
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        make = ["make", "--no-print-directory", "-C", str(REPO), "demo", f"PORT={port}"]
        # its own session: if PORT were ignored, the demo would run; stop all of it then
        proc = subprocess.Popen(
            [*make, f"VENV={venv}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=demo_env(),
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=30)
            pytest.fail(f"the demo did not refuse the taken port {port}: {stdout}{stderr}")

    assert proc.returncode != 0
    assert f"port {port} is in use" in stderr, stdout + stderr
    assert "make demo PORT=" in stderr
