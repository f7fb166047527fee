"""structlog set-up: JSON lines when stderr is not a TTY, console when it is.

Event names are stable snake_case (``poll_cycle``, ``file_written``, …). As a
last line of defence every event is scrubbed of any secret value the agent has
registered with :func:`register_secret_values`, so a value that slips into a
message by accident is still never written out.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal, TextIO

import structlog

LogFormat = Literal["auto", "json", "console"]
LEVELS = ("debug", "info", "warning", "error")
MASK = "***"
_MIN_REDACT_LEN = 4  # shorter values (e.g. "1", "true") would mask ordinary words


class _Redactor:
    def __init__(self) -> None:
        self._values: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def register(self, values: Iterable[str]) -> None:
        new = {v for v in values if len(v) >= _MIN_REDACT_LEN}
        with self._lock:
            # longest first so a value containing another is masked whole
            self._values = self._values | new

    def scrub(self, text: str) -> str:
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return text

    def __call__(
        self, _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if not self._values:
            return event
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = self.scrub(value)
            elif not isinstance(value, int | float | bool | type(None)):
                scrubbed = self.scrub(str(value))
                if scrubbed != str(value):
                    event[key] = scrubbed
        return event


_REDACTOR = _Redactor()


def register_secret_values(values: Iterable[str]) -> None:
    """Remember secret values (and fragments worth masking) to scrub from every log event."""
    _REDACTOR.register(values)


def scrub(text: str) -> str:
    """Mask every registered secret value in ``text`` (for text printed outside structlog)."""
    return _REDACTOR.scrub(text)


def configure(level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog for the process. ``fmt="auto"`` picks console on a TTY, else JSON."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(**initial: Any) -> Any:
    """A bound structlog logger; ``initial`` values are added to every event."""
    return structlog.get_logger("secretsync", **initial)
