"""runtime.py: the whole daemon as a real child process: signals, ordered stop, crashes, locks.

Every test here starts ``secretsync run`` (or ``once``) against moto over HTTP
and drives it with real signals, kill -9, hanging commands and a backend that
never answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.apps import NOTIFY_CMD, is_dead, kill_recorded
from tests.support.configs import example_config, write_yaml
from tests.support.daemon import Daemon, run_cli
from tests.support.faultproxy import FaultProxy
from tests.support.motoserver import Moto
from tests.support.seeds import KAFKA_ID, kafka_secret
from tests.support.wait import wait_until

PY = sys.executable


@pytest.fixture
def hang_pids(tmp_path: Path) -> Iterator[Path]:
    """Where a `hang` command writes its pids; anything left running is killed at the end."""
    path = tmp_path / "hang.pids"
    yield path
    kill_recorded(path)


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def visible(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def handles(pid: int, signum: int) -> bool:
    """True once process ``pid`` catches or ignores ``signum`` (its default action is gone)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    mask = int(fields["SigCgt"], 16) | int(fields["SigIgn"], 16)
    return bool(mask & (1 << (signum - 1)))


class ConfigFifo:
    """The config file as a FIFO: the test sees the daemon's first read of its config.

    A thread hands the config text to every reader (load, reload), so the
    daemon works normally once :meth:`serve` is called.
    """

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.data = path, text.encode()
        os.mkfifo(path)
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def serve(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody reading yet
                self._stop.wait(0.01)
                continue
            with contextlib.suppress(OSError):
                os.set_blocking(fd, True)
                os.write(fd, self.data)
            os.close(fd)
            self.reads += 1
            self._until_reader_gone()

    def _until_reader_gone(self) -> None:
        # one copy per read: serve the next reader only once this one has closed
        while not self._stop.is_set():
            try:
                probe = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader left
                return
            os.close(probe)
            self._stop.wait(0.01)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def test_sighup_from_the_first_instant_is_never_a_death(
    moto: Moto, tmp_path: Path, start_daemon: Any
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    fifo = ConfigFifo(tmp_path / "sync.yaml", yaml.safe_dump(example_config(out, moto.url)))
    try:
        daemon: Daemon = start_daemon(fifo.path, "--no-watch")
        # the handler is in place before the config is read (the daemon waits on the FIFO)…
        wait_until(
            lambda: daemon.proc.poll() is None and handles(daemon.proc.pid, signal.SIGHUP),
            30,
            "a SIGHUP handler before any config read",
        )
        assert fifo.reads == 0
        for _ in range(3):
            daemon.proc.send_signal(signal.SIGHUP)
        fifo.serve()
        sent = 3

        def hup_then_look() -> bool:
            # …and a SIGHUP at every polling step through the rest of start-up
            nonlocal sent
            if daemon.proc.poll() is not None:
                return True
            daemon.proc.send_signal(signal.SIGHUP)
            sent += 1
            return (out / "combined.properties").exists()

        wait_until(hup_then_look, 30, "the first sync under a hail of SIGHUPs")
        assert daemon.proc.poll() is None, f"died after {sent} SIGHUPs: {daemon.proc.returncode}"
        # the SIGHUPs were reload requests
        wait_until(lambda: daemon.has_event("config_reloaded", trigger="sighup"), 20, "a reload")
        assert daemon.stop(signal.SIGTERM) < 10
        assert daemon.proc.returncode == 0
        assert "Traceback" not in daemon.log_path.read_text()
    finally:
        fifo.close()


def test_sigint_stops_cleanly_and_a_second_one_forces_exit(
    moto: Moto, tmp_path: Path, start_daemon: Any, hang_pids: Path
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    cfg = write_yaml(tmp_path / "sync.yaml", example_config(out, moto.url))
    daemon = start_daemon(cfg)
    wait_until(lambda: (out / "combined.properties").exists(), 20, "first sync")
    assert daemon.stop(signal.SIGINT) < 5
    assert daemon.proc.returncode == 0
    assert "Traceback" not in daemon.log_path.read_text()

    # a stop held up by a hanging notify command: the second SIGINT forces it
    data = example_config(tmp_path / "out2", moto.url, settle=0, shutdown_timeout="60s")
    data["notify"] = {"hang": {"command": [PY, str(NOTIFY_CMD), "hang", str(hang_pids)]}}
    data["outputs"][0]["notify"] = ["hang"]
    stuck = start_daemon(write_yaml(tmp_path / "hang.yaml", data))
    wait_until(hang_pids.exists, 20, "the hanging command to run")
    stuck.proc.send_signal(signal.SIGINT)
    wait_until(lambda: stuck.has_event("shutdown_requested"), 10, "shutdown to begin")
    stuck.proc.send_signal(signal.SIGINT)
    stuck.proc.wait(timeout=10)
    assert stuck.has_event("shutdown_forced")
    assert stuck.proc.returncode == 130
    assert all(is_dead(int(pid)) for pid in hang_pids.read_text().split())
    assert "Traceback" not in stuck.log_path.read_text()


def test_shutdown_is_ordered_and_bounded_by_shutdown_timeout(
    moto: Moto, proxy: FaultProxy, tmp_path: Path, start_daemon: Any, hang_pids: Path
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    data = example_config(
        out,
        proxy.url,
        poll={"interval": "200ms", "jitter": 0},
        settle=0,
        shutdown_timeout="3s",
    )
    data["notify"] = {"hang": {"command": [PY, str(NOTIFY_CMD), "hang", str(hang_pids)]}}
    data["outputs"][0]["notify"] = ["hang"]
    daemon = start_daemon(write_yaml(tmp_path / "sync.yaml", data))
    wait_until(hang_pids.exists, 20, "the hanging command to run")
    # and now AWS never answers either: a poll is stuck on it
    proxy.fault = "hang"
    requests = proxy.count("DescribeSecret")
    wait_until(lambda: proxy.count("DescribeSecret") > requests, 10, "a request that hangs")

    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.proc.wait(timeout=30)
    elapsed_s = time.monotonic() - started

    assert elapsed_s < 3 + 2.5, elapsed_s  # the deadline, plus process exit under load
    assert daemon.proc.returncode == 128 + signal.SIGTERM  # the deadline forced it
    assert all(is_dead(int(pid)) for pid in hang_pids.read_text().split())
    events = [e["event"] for e in daemon.events()]
    assert events.index("shutdown_requested") < events.index("shutdown_forced")
    assert daemon.has_event("shutdown_forced", reason="shutdown_timeout")
    # the target was never told: its journal record stays for the next start
    assert (out / ".client.properties.secretsync-pending").exists()


def test_a_kill_during_settle_is_delivered_exactly_once_after_restart(
    moto: Moto, tmp_path: Path, start_daemon: Any
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    calls = tmp_path / "calls.jsonl"
    data = example_config(
        out, moto.url, poll={"interval": "200ms", "jitter": 0}, settle="2500ms", settle_max="2500ms"
    )
    data["notify"] = {"app": {"command": [PY, str(NOTIFY_CMD), "record", str(calls)]}}
    data["outputs"][0]["notify"] = ["app"]
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    first = start_daemon(cfg)
    wait_until(lambda: len(lines(calls)) == 1, 30, "the start-up notification")

    moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-killed-in-settle"))
    kafka_file = out / "client.properties"
    # every output of the secret: the pass writes them one after the other, and a kill
    # between two of them leaves the second daemon one to write
    fed = (kafka_file, out / "combined.properties")
    wait_until(
        lambda: all("CANARY-killed-in-settle" in f.read_text() for f in fed), 20, "the rotation"
    )
    first.proc.kill()  # within `settle`: the app was not told yet
    first.proc.wait(timeout=10)
    assert len(lines(calls)) == 1

    second = start_daemon(cfg)
    wait_until(lambda: len(lines(calls)) == 2, 30, "the notification after restart")
    assert lines(calls)[1]["changed"] == str(kafka_file)
    wait_until(lambda: second.has_event("notify_sent", target="app"), 10, "its log line")
    # nothing else is pending: more cycles and another settle period bring no third call
    cycles = sum(e.get("event") == "poll_cycle" for e in second.events())
    wait_until(
        lambda: sum(e.get("event") == "poll_cycle" for e in second.events()) > cycles + 15,
        30,
        "three more seconds of polling",
    )
    assert len(lines(calls)) == 2
    assert not second.has_event("file_written")  # the restart found the bytes in place
    assert not (out / ".client.properties.secretsync-pending").exists()
    assert second.stop() < 10 and second.proc.returncode == 0


def test_one_writer_per_output(moto: Moto, tmp_path: Path, start_daemon: Any) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    first = start_daemon(write_yaml(tmp_path / "a.yaml", example_config(out, moto.url)))
    wait_until(lambda: (out / "combined.properties").exists(), 20, "first sync")

    # a second daemon sharing one path (and with one path of its own) is refused at once
    data = example_config(out, moto.url)
    other = tmp_path / "other"
    data["outputs"][1]["path"] = str(other / "schema-registry.properties")
    second = start_daemon(write_yaml(tmp_path / "b.yaml", data))
    assert second.proc.wait(timeout=30) == 2
    text = second.log_path.read_text().strip().splitlines()
    refusal = [line for line in text if "managed by another secretsync" in line]
    assert len(refusal) == 1
    assert str(out / "client.properties") in refusal[0]
    assert f"pid {first.proc.pid}" in refusal[0]
    assert not other.exists() or visible(other) == []  # wrote nothing

    # so is a `once`
    once = run_cli("once", "-c", str(tmp_path / "a.yaml"))
    assert once.returncode == 2
    assert f"pid {first.proc.pid}" in once.stderr and once.stderr.count("\n") == 1

    # and once the daemon is gone the path is free again
    assert first.stop() < 10
    assert run_cli("once", "-c", str(tmp_path / "a.yaml")).returncode == 0
