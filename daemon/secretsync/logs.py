"""structlog set-up: JSON lines when stderr is not a TTY, console when it is.

Event names are stable snake_case (``poll_cycle``, ``file_written``, …).

Secret material never reaches a log line. The first line of defence is what
the code logs: ids, keys, paths, counts and fixed words, never data that can
hold a value, and never an exception's ``repr`` (see :func:`error_fields`).
The last line of defence is the redactor: every event is scrubbed of the
values of the secret versions currently held (``hold_secret``), in the forms a
value takes once rendered or quoted (raw, JSON-escaped, Python-escaped, Java
``.properties``-escaped, shell-quoted). It keeps only the versions held now,
and indexes them when they change, so the cost of a log event does not grow
with the number of rotations seen. What it holds per secret is bounded
(:data:`REDACT_MAX_CHARS_PER_SECRET` characters, :data:`REDACT_MAX_STRINGS_PER_SECRET`
strings, all forms counted): every raw value first, then one kind of escaped
form after another; a secret that does not fit is logged (``secret_mask_truncated``).
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import threading
import traceback
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal, TextIO

import structlog

from secretsync import LOG_LEVELS
from secretsync.escapes import jaas_quote, properties_forms

LogFormat = Literal["auto", "json", "console"]
LEVELS = LOG_LEVELS
MASK = "***"
_MIN_REDACT_LEN = 4  # shorter values (e.g. "1", "true") would mask ordinary words
TRACEBACK_FRAMES = 12  # innermost frames kept in a logged traceback
# A secret of the most Secrets Manager holds (64 KiB) fits with every form of its text
# and its strings; a bigger or stranger one is masked as far as this goes.
REDACT_MAX_CHARS_PER_SECRET = 1 << 20
REDACT_MAX_STRINGS_PER_SECRET = 16_384


ESCAPED_KINDS = 11
"""How many escaped forms :func:`_escaped` gives per value."""


def _escaped(value: str) -> tuple[str, ...]:
    """The escaped forms ``value`` takes in our outputs, quotes and reprs, likeliest first
    (:data:`ESCAPED_KINDS` of them, some maybe equal): in a ``.properties`` value as the
    renderer writes it, as a ``.properties`` key escapes it, in a JSON file or log line,
    in an env file, as a password inside ``sasl.jaas.config`` (and that in
    ``.properties``, both ways), JSON with ASCII escapes, a Python repr, ``.properties``
    escapes without ``\\uXXXX`` (plain and JAAS-quoted).

    The work the forms share is done once (the redactor escapes every value held, and a
    thousand secrets are held at once)."""
    jaas = jaas_quote(value)[1:-1]
    props_value, props_key, props_unicode = properties_forms(value)
    jaas_value, jaas_key, jaas_unicode = properties_forms(jaas)
    in_json = json.dumps(value, ensure_ascii=False)[1:-1]
    in_json_ascii = in_json if value.isascii() else json.dumps(value)[1:-1]
    return (
        props_value,
        props_key,
        in_json,
        shlex.quote(value),
        jaas,
        jaas_value,
        jaas_key,
        in_json_ascii,
        repr(value)[1:-1],
        props_unicode,
        jaas_unicode,
    )


def _forms(values: Iterable[str]) -> tuple[frozenset[str], bool]:
    """What to mask for one secret's ``values``, within the per-secret budget: every raw
    value first, then each kind of escaped form of every value in turn (so one huge
    value never crowds out the others). Returns the strings, and True when some did
    not fit. An escaped form is never shorter than its value, so a value longer than
    what is left of the budget is not even escaped."""
    raw = [v for v in dict.fromkeys(values) if len(v) >= _MIN_REDACT_LEN]
    chosen: dict[str, None] = {}
    left = REDACT_MAX_CHARS_PER_SECRET
    cut = False
    escaped: dict[str, tuple[str, ...]] = {}
    for kind in range(-1, ESCAPED_KINDS):  # -1: the value as it is
        for value in raw:
            if len(chosen) >= REDACT_MAX_STRINGS_PER_SECRET or len(value) > left:
                cut = True
                continue
            if kind < 0:
                form = value
            else:
                forms = escaped.get(value)
                if forms is None:
                    forms = escaped[value] = _escaped(value)
                form = forms[kind]
            if len(form) < _MIN_REDACT_LEN or form in chosen:
                continue
            if len(form) > left:
                cut = True
                continue
            chosen[form] = None
            left -= len(form)
    return frozenset(chosen), cut


class _Redactor:
    """Masks the values of the secret versions currently held.

    ``hold(owner, values)`` replaces everything ``owner`` (a secret id) held
    before, ``release(owner)`` forgets it. The strings to mask are indexed by
    their first ``_MIN_REDACT_LEN`` characters as they change, so scrubbing a
    text costs one dictionary lookup per character position (plus the checks
    of the candidates found there), however many values are held, and holding
    one more costs the same with a thousand held. Each bucket touched by a
    change is rebuilt once per change, not once per string (thousands of
    strings sharing a prefix were quadratic).
    """

    def __init__(self) -> None:
        self._held: dict[str, frozenset[str]] = {}
        self._owners: dict[str, int] = {}  # value → how many secrets hold it
        self._index: dict[str, tuple[str, ...]] = {}  # prefix → values, longest first
        self._chars = 0  # characters of the distinct strings held
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"_Redactor(owners={len(self._held)}, values={self.count})"

    @property
    def count(self) -> int:
        """How many distinct strings are masked now (all forms of all held values)."""
        return len(self._owners)

    @property
    def chars(self) -> int:
        """How many characters those strings hold."""
        return self._chars

    def hold(self, owner: str, values: Iterable[str]) -> bool:
        """Returns True when some of ``values`` did not fit in the per-secret budget."""
        forms, cut = _forms(values)
        with self._lock:
            old = self._held.get(owner, frozenset())
            if old == forms:
                return cut
            if forms:
                self._held[owner] = forms
            else:
                self._held.pop(owner, None)
            # only what changed is re-indexed: a thousand secrets held cost nothing
            # more to the next one (the whole set used to be rebuilt each time)
            self._update(added=forms - old, removed=old - forms)
        return cut

    def release(self, owner: str) -> None:
        with self._lock:
            self._update(added=frozenset(), removed=self._held.pop(owner, frozenset()))

    def release_all_but(self, owners: Iterable[str]) -> None:
        keep = set(owners)
        with self._lock:
            for owner in [o for o in self._held if o not in keep]:
                self._update(added=frozenset(), removed=self._held.pop(owner))

    def _update(self, *, added: frozenset[str], removed: frozenset[str]) -> None:
        new: dict[str, list[str]] = {}  # prefix → strings now held by a first secret
        gone: dict[str, set[str]] = {}  # prefix → strings no secret holds any more
        for value in added:
            held = self._owners.get(value, 0)
            self._owners[value] = held + 1
            if held == 0:
                new.setdefault(value[:_MIN_REDACT_LEN], []).append(value)
                self._chars += len(value)
        for value in removed:
            held = self._owners.pop(value, 0) - 1
            if held > 0:
                self._owners[value] = held
            else:
                gone.setdefault(value[:_MIN_REDACT_LEN], set()).add(value)
                self._chars -= len(value)
        for prefix in new.keys() | gone.keys():
            dropped = gone.get(prefix, set())
            bucket = [v for v in self._index.get(prefix, ()) if v not in dropped]
            bucket += new.get(prefix, [])
            if bucket:
                # longest first, so that a value containing another is masked whole
                self._index[prefix] = tuple(sorted(bucket, key=len, reverse=True))
            else:
                self._index.pop(prefix, None)

    def scrub(self, text: str) -> str:
        index = self._index
        if not index or len(text) < _MIN_REDACT_LEN:
            return text
        out: list[str] = []
        start = i = 0
        last = len(text) - _MIN_REDACT_LEN
        while i <= last:
            candidates = index.get(text[i : i + _MIN_REDACT_LEN])
            if candidates is not None:
                match = next((v for v in candidates if text.startswith(v, i)), None)
                if match is not None:
                    out.append(text[start:i])
                    out.append(MASK)
                    i = start = i + len(match)
                    continue
            i += 1
        if not out:
            return text
        out.append(text[start:])
        return "".join(out)

    def __call__(
        self, _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if not self._index:
            return event
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = self.scrub(value)
            elif not isinstance(value, int | float | bool | type(None)):
                text = str(value)
                scrubbed = self.scrub(text)
                if scrubbed != text:
                    event[key] = scrubbed
        return event


_REDACTOR = _Redactor()


def hold_secret(secret_id: str, values: Iterable[str]) -> None:
    """Mask ``values`` (the strings of the version of ``secret_id`` held now) in every event.

    Replaces what was held for ``secret_id`` before: a rotated-away version is
    no longer in memory, so it is no longer worth masking. At most
    REDACT_MAX_CHARS_PER_SECRET characters and REDACT_MAX_STRINGS_PER_SECRET
    strings are held per secret (raw values first); what does not fit is not
    masked, and ``secret_mask_truncated`` is logged.
    """
    if _REDACTOR.hold(secret_id, values):
        get_logger().warning(
            "secret_mask_truncated",
            secret=secret_id,
            max_chars=REDACT_MAX_CHARS_PER_SECRET,
            max_strings=REDACT_MAX_STRINGS_PER_SECRET,
        )


def release_secret(secret_id: str) -> None:
    """Stop masking the values of ``secret_id`` (it is no longer used)."""
    _REDACTOR.release(secret_id)


def release_secrets_except(secret_ids: Iterable[str]) -> None:
    """Forget the values of every secret not in ``secret_ids`` (after a config reload)."""
    _REDACTOR.release_all_but(secret_ids)


def redacted_count() -> int:
    """How many strings the redactor masks now (tests and debugging)."""
    return _REDACTOR.count


def redacted_chars() -> int:
    """How many characters those strings hold (tests and debugging)."""
    return _REDACTOR.chars


def scrub(text: str) -> str:
    """Mask every held secret value in ``text`` (for text printed outside structlog)."""
    return _REDACTOR.scrub(text)


def error_fields(exc: BaseException, *, with_traceback: bool = False) -> dict[str, Any]:
    """Log fields that describe ``exc`` without any data it may carry.

    An exception's ``repr`` and often its ``str`` hold the data that caused it
    (``UnicodeEncodeError`` carries the whole string being encoded), so only
    exceptions that declare a safe message (class attribute ``safe_message =
    True``: our own errors, whose texts name ids, keys and paths only) log
    their text. Others log their type alone. ``with_traceback`` adds the
    innermost frames as ``file:line function`` (code locations, no values).
    """
    fields: dict[str, Any] = {"error_type": type(exc).__name__}
    if getattr(exc, "safe_message", False):
        fields["error"] = str(exc)
    if with_traceback and exc.__traceback__ is not None:
        frames = traceback.extract_tb(exc.__traceback__)[-TRACEBACK_FRAMES:]
        fields["traceback"] = [f"{f.filename}:{f.lineno} {f.name}" for f in frames]
    return fields


def configure(level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog for the process. ``fmt="auto"`` picks console on a TTY, else JSON.

    There is deliberately no ``format_exc_info`` processor: a formatted
    traceback ends with the exception's message, which may hold data. Log
    exceptions with :func:`error_fields` instead.
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    structlog.configure(
        # the level and the time are added after the redactor: they hold no data, and
        # scrubbing them was a third of its work per event (the fields keep their order)
        processors=[
            structlog.contextvars.merge_contextvars,
            _REDACTOR,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.WriteLoggerFactory(file=stream),  # one write per line
        cache_logger_on_first_use=False,
    )


def get_logger(**initial: Any) -> Any:
    """A bound structlog logger; ``initial`` values are added to every event."""
    return structlog.get_logger("secretsync", **initial)
