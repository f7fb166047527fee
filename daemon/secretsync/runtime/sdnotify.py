"""systemd's sd_notify protocol, written directly: one datagram per message, no dependency.

What the daemon tells systemd (``Type=notify``, ``WatchdogSec=``):

- ``READY=1`` after the first complete sync (the first cycle in which every
  output is current). A failing first sync never claims readiness, so a unit
  ordered ``After=secretsync.service`` starts only once its files exist.
- ``STATUS=…`` a one-line summary after every cycle (counts only, never a value).
- ``WATCHDOG=1`` every half of ``WATCHDOG_USEC``, from a task in the daemon's
  own event loop: a blocked loop stops the pings and systemd restarts the
  service. Never from a separate thread, which would keep petting a wedged loop.
- ``RELOADING=1`` + ``MONOTONIC_USEC=`` when a config reload starts, ``READY=1``
  when it is done.
- ``STOPPING=1`` when shutdown begins.

Everything is a no-op when ``NOTIFY_SOCKET`` is unset (a container, a shell).
``NOTIFY_SOCKET`` may be a filesystem path or an abstract-namespace name
written ``@name``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING

from secretsync import logs

if TYPE_CHECKING:
    pass

ENV_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
STATUS_MAX_CHARS = 200


def _address(value: str | None) -> str | None:
    """The socket address for ``NOTIFY_SOCKET``: a path, or ``\\0name`` for ``@name``."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock: and relative paths are not supported


def _watchdog_interval_s(environ: Mapping[str, str], pid: int) -> float | None:
    """Half of ``WATCHDOG_USEC`` when the watchdog is meant for ``pid``, else None."""
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None  # the watchdog belongs to another process (e.g. our parent)
    return int(usec) / 1_000_000 / 2


def _one_line(text: str) -> str:
    # a newline would start a new field of the datagram
    return " ".join(text.split())[:STATUS_MAX_CHARS]


class SdNotifier:
    """Sends sd_notify datagrams to ``NOTIFY_SOCKET``; does nothing when it is unset.

    ``environ`` defaults to ``os.environ`` read at construction time (no I/O: the
    socket is opened per message). Sending never raises: a failure is logged
    once, until a later message gets through.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, *, pid: int | None = None) -> None:
        env = os.environ if environ is None else environ
        self.raw_address = env.get("NOTIFY_SOCKET") or None
        self.address = _address(self.raw_address)
        own_pid = os.getpid() if pid is None else pid
        self.watchdog_interval_s = (
            _watchdog_interval_s(env, own_pid) if self.address is not None else None
        )
        self.ready_sent = False
        self.sent = 0
        self._failing = False
        self._log = logs.get_logger()

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] | None = None) -> SdNotifier:
        """Read ``NOTIFY_SOCKET``/``WATCHDOG_*`` and remove them from ``environ``.

        Removing them (as libsystemd's ``unset_environment`` does) keeps child
        processes, such as notify commands, from talking to systemd as if they
        were the service.
        """
        env = os.environ if environ is None else environ
        notifier = cls(dict(env))
        for name in ENV_VARS:
            env.pop(name, None)
        return notifier

    def __repr__(self) -> str:
        return (
            f"SdNotifier(address={self.raw_address!r}, "
            f"watchdog_interval_s={self.watchdog_interval_s}, ready_sent={self.ready_sent})"
        )

    @property
    def enabled(self) -> bool:
        return self.address is not None

    # -- the datagram ------------------------------------------------------------------

    def send(self, **fields: str | int) -> bool:
        """Send one datagram ``KEY=value\\n…``; True when it was delivered to the socket.

        Non-blocking: if systemd's queue is full the message is dropped (and logged)
        rather than stalling the event loop.
        """
        if self.address is None:
            if self.raw_address is not None and not self._failing:
                self._failing = True
                self._log.warning(
                    "sd_notify_unsupported_socket",
                    notify_socket=self.raw_address,
                    hint="only absolute paths and @abstract names are supported",
                )
            return False
        payload = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(payload, self.address)
        except OSError as exc:
            if not self._failing:
                self._failing = True
                self._log.warning(
                    "sd_notify_failed",
                    notify_socket=self.raw_address,
                    fields=sorted(fields),
                    error=exc.strerror or str(exc),
                )
            return False
        if self._failing:
            self._failing = False
            self._log.info("sd_notify_recovered", notify_socket=self.raw_address)
        self.sent += 1
        return True

    # -- the messages ----------------------------------------------------------------

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (with ``STATUS=`` if given)."""
        extra = {"STATUS": _one_line(status)} if status else {}
        delivered = self.send(READY=1, **extra)
        # if it was lost, the next cycle sends READY=1 again
        self.ready_sent = self.ready_sent or delivered
        return delivered

    def status(self, text: str) -> bool:
        """``STATUS=text``; newlines are folded so the text stays one field."""
        return self.send(STATUS=_one_line(text))

    def stopping(self, status: str = "stopping") -> bool:
        """``STOPPING=1``: shutdown has begun."""
        return self.send(STOPPING=1, STATUS=_one_line(status))

    def watchdog_ping(self) -> bool:
        """``WATCHDOG=1``."""
        return self.send(WATCHDOG=1)

    def reload_started(self) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC`` (CLOCK_MONOTONIC, as systemd ≥ 253 wants)."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(RELOADING=1, MONOTONIC_USEC=usec, STATUS="reloading configuration")

    def reload_finished(self, status: str = "configuration reloaded") -> bool:
        """End a reload: ``READY=1`` if readiness was already claimed, else only ``STATUS=``.

        A reload during start-up must not claim readiness before the first sync.
        """
        if self.ready_sent:
            return self.ready(status)
        return self.status(status)

    @contextlib.contextmanager
    def reloading(self) -> Iterator[None]:
        """``with notifier.reloading(): …`` sends RELOADING=1 before and READY=1 after.

        READY=1 is sent even if the body raises (a rejected config keeps the old
        one running, so the service is still ready).
        """
        self.reload_started()
        try:
            yield
        finally:
            self.reload_finished()

    # -- the watchdog --------------------------------------------------------------------

    async def watchdog(self, alive: Callable[[], bool] | None = None) -> None:
        """Ping every ``watchdog_interval_s`` until cancelled; returns at once if disabled.

        Runs in the daemon's event loop, so a loop blocked by a synchronous call
        sends nothing. ``alive()`` returning False (the poller stalled) skips a ping.
        """
        interval_s = self.watchdog_interval_s
        if interval_s is None or self.address is None:
            return
        self._log.debug("sd_watchdog_started", interval_s=interval_s)
        while True:
            if alive is None or alive():
                self.watchdog_ping()
            else:
                self._log.warning("sd_watchdog_skipped", reason="no poll cycle started lately")
            await asyncio.sleep(interval_s)
