"""sd_notify for real: a bound SOCK_DGRAM socket, the daemon as a child process, moto over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secretsync.runtime.sdnotify import SdNotifier
from tests.support.configs import example_config, write_yaml
from tests.support.motoserver import Moto
from tests.support.notifysock import NotifySocket
from tests.support.seeds import CANARY_PASSWORD, CANARY_SR_SECRET
from tests.support.wait import wait_until

OUTPUT_NAMES = ("client.properties", "schema-registry.properties", "combined.properties")


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request: pytest.FixtureRequest) -> Iterator[NotifySocket]:
    with contextlib.closing(NotifySocket(abstract=request.param == "abstract")) as sock:
        yield sock


@pytest.fixture
def path_socket() -> Iterator[NotifySocket]:
    with contextlib.closing(NotifySocket()) as sock:
        yield sock


def _no_secret_in(sock: NotifySocket) -> None:
    for message in sock.poll():
        text = repr(message.fields)
        assert CANARY_PASSWORD not in text and CANARY_SR_SECRET not in text


def test_ready_only_after_the_first_complete_sync_then_watchdog_and_stopping(
    moto: Moto,
    tmp_path: Path,
    start_daemon: Any,
    notify_socket: NotifySocket,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    files = [out / name for name in OUTPUT_NAMES]
    notify_socket.on_receive = lambda _fields: all(f.exists() for f in files)
    cfg = write_yaml(
        tmp_path / "sync.yaml",
        example_config(out, moto.url, poll={"interval": "200ms", "jitter": 0}),
    )
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.address)
    monkeypatch.setenv("WATCHDOG_USEC", "300000")  # a ping every 150 ms
    # the secrets do not exist yet: the first syncs fail (a permanent error,
    # retried at every poll), so the daemon must not claim readiness
    daemon = start_daemon(cfg)

    wait_until(lambda: len(notify_socket.with_field("STATUS")) >= 3, 20, "three failed cycles")
    assert notify_socket.with_field("READY") == []
    assert not any(f.exists() for f in files)
    assert "0/3 outputs current" in notify_socket.with_field("STATUS")[0].fields["STATUS"]

    moto.seed_use_case()

    ready = wait_until(lambda: notify_socket.with_field("READY", "1"), 20, "READY=1")
    assert len(ready) == 1
    assert ready[0].extra is True, "READY=1 arrived before every output file existed"
    assert ready[0].fields["STATUS"].startswith("3/3 outputs current")
    # the watchdog keeps petting while the daemon is healthy
    pings_before = len(notify_socket.with_field("WATCHDOG", "1"))
    wait_until(
        lambda: len(notify_socket.with_field("WATCHDOG", "1")) >= pings_before + 3,
        10,
        "three more WATCHDOG=1 pings",
    )

    assert daemon.stop(signal.SIGTERM) < 5
    assert daemon.proc.returncode == 0
    stopping = wait_until(lambda: notify_socket.with_field("STOPPING", "1"), 5, "STOPPING=1")
    assert len(stopping) == 1
    # READY=1 is sent once, however many cycles follow
    assert len(notify_socket.with_field("READY", "1")) == 1
    _no_secret_in(notify_socket)
    assert "Traceback" not in daemon.log_path.read_text()


def test_without_notify_socket_the_daemon_sends_nothing_and_runs(
    moto: Moto,
    tmp_path: Path,
    start_daemon: Any,
    path_socket: NotifySocket,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    cfg = write_yaml(
        tmp_path / "sync.yaml",
        example_config(out, moto.url, poll={"interval": "200ms", "jitter": 0}),
    )
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "300000")
    daemon = start_daemon(cfg)
    wait_until(lambda: daemon.has_event("poll_cycle", files_written=3), 20, "first sync")
    wait_until(lambda: len([e for e in daemon.events() if e["event"] == "poll_cycle"]) >= 3, 20)

    assert daemon.stop(signal.SIGTERM) < 5
    assert daemon.proc.returncode == 0
    assert path_socket.poll() == []
    assert not daemon.has_event("sd_notify_failed")


# -- the watchdog runs in the daemon's loop: a wedged loop stops the pings -------------


class LoopThread:
    """An asyncio loop in a thread, so the test can block it with a synchronous call."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def wedge(self) -> tuple[threading.Event, threading.Event]:
        """Block the loop in a synchronous call until the returned ``release`` is set."""
        entered, release = threading.Event(), threading.Event()

        def blocking_call() -> None:
            entered.set()
            release.wait(timeout=30)  # what a stuck synchronous call looks like

        self.loop.call_soon_threadsafe(blocking_call)
        return entered, release

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.close()


def test_a_wedged_loop_stops_the_watchdog_pings(
    path_socket: NotifySocket, loop_thread: LoopThread
) -> None:
    interval_s = 0.05
    notifier = SdNotifier(
        {"NOTIFY_SOCKET": path_socket.address, "WATCHDOG_USEC": str(int(interval_s * 2e6))}
    )
    assert notifier.watchdog_interval_s == pytest.approx(interval_s)
    asyncio.run_coroutine_threadsafe(notifier.watchdog(), loop_thread.loop)
    wait_until(lambda: len(path_socket.with_field("WATCHDOG", "1")) >= 3, 10, "pings")

    entered, release = loop_thread.wedge()
    assert entered.wait(timeout=10)
    path_socket.poll()  # drain what was sent before the loop blocked
    # ten intervals pass with the loop blocked: not one ping may arrive
    assert path_socket.recv_within(10 * interval_s) is None

    release.set()
    assert path_socket.recv_within(10) == {"WATCHDOG": "1"}, "pings resume with the loop"


def test_the_watchdog_skips_pings_while_the_agent_is_stalled(
    path_socket: NotifySocket, loop_thread: LoopThread
) -> None:
    notifier = SdNotifier({"NOTIFY_SOCKET": path_socket.address, "WATCHDOG_USEC": "100000"})
    healthy = threading.Event()
    asyncio.run_coroutine_threadsafe(notifier.watchdog(healthy.is_set), loop_thread.loop)

    assert path_socket.recv_within(0.5) is None  # stalled: ten intervals, no ping
    healthy.set()
    assert path_socket.recv_within(10) == {"WATCHDOG": "1"}


# -- the protocol ---------------------------------------------------------------------------


def test_abstract_namespace_address_is_supported() -> None:
    with contextlib.closing(NotifySocket(abstract=True)) as sock:
        assert sock.address.startswith("@")
        notifier = SdNotifier({"NOTIFY_SOCKET": sock.address})
        assert notifier.ready("3/3 outputs current")
        assert sock.recv_within(5) == {"READY": "1", "STATUS": "3/3 outputs current"}


def test_unset_notify_socket_is_a_no_op() -> None:
    notifier = SdNotifier({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval_s is None
    assert notifier.send(READY=1) is False
    assert notifier.stopping() is False
    asyncio.run(asyncio.wait_for(notifier.watchdog(), 5))  # returns at once when disabled
    assert notifier.sent == 0


def test_watchdog_meant_for_another_pid_is_ignored(path_socket: NotifySocket) -> None:
    env = {"NOTIFY_SOCKET": path_socket.address, "WATCHDOG_USEC": "2000000"}
    assert SdNotifier({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_interval_s == 1.0
    assert SdNotifier({**env, "WATCHDOG_PID": str(os.getpid() + 1)}).watchdog_interval_s is None
    assert SdNotifier({**env, "WATCHDOG_USEC": "0"}).watchdog_interval_s is None


def test_from_environ_removes_the_variables_so_children_do_not_inherit_them(
    path_socket: NotifySocket,
) -> None:
    env = {"NOTIFY_SOCKET": path_socket.address, "WATCHDOG_USEC": "1000000", "PATH": "/bin"}
    notifier = SdNotifier.from_environ(env)
    assert env == {"PATH": "/bin"}
    assert notifier.enabled and notifier.watchdog_interval_s == 0.5


def test_reloading_sends_reloading_with_monotonic_usec_then_ready(
    path_socket: NotifySocket,
) -> None:
    notifier = SdNotifier({"NOTIFY_SOCKET": path_socket.address})
    before_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    # during start-up (no READY yet) a reload must not claim readiness
    with notifier.reloading():
        pass
    first = path_socket.recv_within(5)
    assert first is not None and first["RELOADING"] == "1"
    assert int(first["MONOTONIC_USEC"]) >= before_usec
    assert path_socket.recv_within(5) == {"STATUS": "configuration reloaded"}

    notifier.ready("ok")
    assert path_socket.recv_within(5) == {"READY": "1", "STATUS": "ok"}
    with pytest.raises(ValueError), notifier.reloading():  # a rejected config
        raise ValueError("bad config")
    assert path_socket.recv_within(5)["RELOADING"] == "1"  # type: ignore[index]
    assert path_socket.recv_within(5) == {"READY": "1", "STATUS": "configuration reloaded"}


def test_status_is_one_line_and_a_dead_socket_never_raises(path_socket: NotifySocket) -> None:
    notifier = SdNotifier({"NOTIFY_SOCKET": path_socket.address})
    assert notifier.status("line one\nREADY=1\n  line two")
    assert path_socket.recv_within(5) == {"STATUS": "line one READY=1 line two"}

    gone = SdNotifier({"NOTIFY_SOCKET": "/nonexistent/notify.sock"})
    assert gone.enabled
    assert gone.send(WATCHDOG=1) is False
    assert gone.ready() is False
    assert gone.ready_sent is False  # a lost READY=1 is sent again after the next cycle


def test_relative_or_vsock_addresses_are_not_used() -> None:
    for address in ("relative.sock", "vsock:2:1234"):
        notifier = SdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"})
        assert not notifier.enabled
        assert notifier.watchdog_interval_s is None
        assert notifier.send(READY=1) is False
