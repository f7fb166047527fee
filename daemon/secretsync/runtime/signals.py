"""Signal handling from the first instant, the way uvicorn's ``capture_signals`` does it.

:func:`capture_signals` is entered by the CLI before any config read or
network call. Its handlers only record the signal (and, once the runtime has
attached an event loop, schedule a callback in it): SIGTERM and SIGINT ask
for a stop, a second one forces it; SIGHUP asks for a config reload. A SIGHUP
during start-up is therefore a reload request, never the default action
(which would kill the process). On exit the previous handlers are restored.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

StopCallback = Callable[[int, bool], None]  # (signum, forced)
ReloadCallback = Callable[[], None]


class SignalCapture:
    """Records SIGTERM/SIGINT/SIGHUP and hands them to the runtime once it attaches."""

    def __init__(self) -> None:
        self.stop_signal: int | None = None  # the first stop signal
        self.stops = 0
        self.reloads = 0
        self._previous: dict[int, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_stop: StopCallback | None = None
        self._on_reload: ReloadCallback | None = None

    def __repr__(self) -> str:
        return (
            f"SignalCapture(stop_signal={self.stop_signal}, stops={self.stops}, "
            f"reloads={self.reloads})"
        )

    @property
    def stop_requested(self) -> bool:
        return self.stops > 0

    @property
    def forced(self) -> bool:
        return self.stops > 1

    def install(self) -> None:
        """Install the handlers (main thread only)."""
        for signum in HANDLED:
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        """Put back the handlers found at :meth:`install`."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def attach(
        self, loop: asyncio.AbstractEventLoop, on_stop: StopCallback, on_reload: ReloadCallback
    ) -> None:
        """Deliver signals to callbacks in ``loop`` from now on, replaying those already seen."""
        self._loop, self._on_stop, self._on_reload = loop, on_stop, on_reload
        if self.stop_signal is not None:
            loop.call_soon(on_stop, self.stop_signal, self.forced)
        if self.reloads:
            loop.call_soon(on_reload)

    def detach(self) -> None:
        """Stop delivering to the loop (signals are still recorded)."""
        self._loop = self._on_stop = self._on_reload = None

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        # runs in the main thread between bytecodes: only record and schedule
        if signum == signal.SIGHUP:
            self.reloads += 1
            callback: Callable[..., None] | None = self._on_reload
            args: tuple[Any, ...] = ()
        else:
            self.stops += 1
            if self.stop_signal is None:
                self.stop_signal = signum
            callback, args = self._on_stop, (signum, self.forced)
        loop = self._loop
        if loop is not None and callback is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(callback, *args)


@contextlib.contextmanager
def capture_signals() -> Iterator[SignalCapture]:
    """Install a :class:`SignalCapture` for the duration of the block, then restore."""
    capture = SignalCapture()
    capture.install()
    try:
        yield capture
    finally:
        capture.restore()
