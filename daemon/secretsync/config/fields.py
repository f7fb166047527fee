"""Field types of sync.yaml: durations, modes, signals, accounts, paths. Pure.

Each is a parser whose ValueError text says what is allowed, wrapped in a
:mod:`secretsync.config.schema` kind; values echoed back go through
:func:`secretsync.config.errors.brief`, so they are always short.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any, Literal

from secretsync.config.errors import brief
from secretsync.config.schema import Ctx, Custom, Kind, MapOf, NullIs, Number, Seq

# one or more parts, each a number and a unit, the units from the largest down, each once
# ("1h30m", "2m500ms"); a bare number (seconds) stands alone
_DURATION_NUMBER_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*$", re.ASCII)
_DURATION_PART_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|h|m|s)", re.ASCII)
_DURATION_UNITS_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION_ORDER = list(_DURATION_UNITS_S)
DURATION_HELP = (
    'a duration such as "500ms", "30s", "5m", "1h", "1m30s" or a number of seconds '
    "(compound: units from h down to ms, each once)"
)


def _compound_seconds(text: str) -> float | None:
    """Seconds for ``"1h30m"``-style text, or None when it is not one."""
    seconds, pos, last = 0.0, 0, -1
    end = len(text.rstrip())
    while pos < end:
        match = _DURATION_PART_RE.match(text, pos)
        if match is None:
            return None
        rank = _DURATION_ORDER.index(match.group(2))
        if rank <= last:  # out of order ("30s1m") or twice ("1m1m")
            return None
        seconds += float(match.group(1)) * _DURATION_UNITS_S[match.group(2)]
        pos, last = match.end(), rank
    return seconds if last >= 0 else None


def parse_duration(value: object) -> float:
    """Return seconds for ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"1m30s"`` or a number.

    Compound durations list their units from the largest down, each once
    (``"1h30m"``, ``"2m500ms"``; spaces between parts are allowed). Negative
    values, booleans, another unit, a unit out of order or twice (``"30s1m"``,
    ``"1m1m"``) and a trailing bare number (``"1m30"``) are rejected with a
    ValueError whose text lists the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected {DURATION_HELP}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"must not be negative; expected {DURATION_HELP}")
        return float(value)
    if isinstance(value, str) and len(value) <= 100:  # a real duration is a few characters
        number = _DURATION_NUMBER_RE.match(value)
        if number:
            return float(number.group(1))
        seconds = _compound_seconds(value)
        if seconds is not None:
            return seconds
    raise ValueError(f"expected {DURATION_HELP}, got {brief(value)}")


def duration(
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
) -> Number:
    """A duration field (seconds, a float) within bounds."""
    return Number(parse=parse_duration, ge=ge, gt=gt, le=le)


def _parse_mode(value: object) -> int:
    if isinstance(value, str) and re.fullmatch(r"0?[0-7]{3}", value):
        mode = int(value, 8)
        if mode & 0o002:
            raise ValueError("must not be world-writable (allowed: 0000-0775 without o+w)")
        return mode
    raise ValueError(
        f'expected an octal string such as "0600" or "0640" (allowed: "0000"-"0775"), '
        f"got {brief(value)}"
        + (" (quote it in YAML: a bare 0600 is read as a number)" if isinstance(value, int) else "")
    )


FILE_MODE = Custom(lambda value, _ctx: _parse_mode(value))


def _scalar_to_str(value: object) -> str:
    # YAML turns `retries: 3` and `enable: true` into int/bool; Java wants text.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ValueError("expected a string, number or boolean")


STATIC_VALUE = Custom(lambda value, _ctx: _scalar_to_str(value))

SIGNAL_NAMES = sorted(
    s.name for s in signal.Signals if s.name.startswith("SIG") and not s.name.startswith("SIG_")
)


_SIGNALS_ALLOWED = (
    "allowed: SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGINT, "
    "or another standard name except SIGKILL/SIGSTOP"
)


def _parse_signal(value: object) -> str:
    if isinstance(value, str):
        name = value.upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        if name in {"SIGKILL", "SIGSTOP"}:
            raise ValueError(
                f"{name} cannot be used (a process cannot handle it); {_SIGNALS_ALLOWED}"
            )
        if name in SIGNAL_NAMES:
            return name
    raise ValueError(f"unknown signal {brief(value)}; {_SIGNALS_ALLOWED}")


SIGNAL_NAME = Custom(lambda value, _ctx: _parse_signal(value))

_ID_MAX = 4294967294  # 4294967295 is (uid_t)-1, which chown(2) reads as "leave unchanged"
# the portable user/group name rule of useradd(8), case-insensitive; ASCII only
_ACCOUNT_NAME_RE = re.compile(r"[a-z_][a-z0-9_.-]*\$?", re.IGNORECASE | re.ASCII)
_ACCOUNT_NAME_MAX = 32


def account_field(kind: Literal["user", "group"]) -> Custom:
    """Validate ``owner``/``group``: a name, or a uid/gid 0-4294967294 (YAML int or digits)."""
    number = "uid" if kind == "user" else "gid"
    help_text = (
        f"expected a {kind} name (letters, digits, _ . -; at most 32 characters, "
        f"not starting with a digit or -) or a numeric {number} 0-{_ID_MAX}"
    )

    def parse(value: object) -> str | int | None:
        if value is None:
            return None
        out_of_range = f"out of range: a {number} is 0-{_ID_MAX}; got {brief(value)}"
        # str.isdigit() alone accepts "４２" and "٤٢", which int() reads but chown(1) does not
        if isinstance(value, str) and value.isascii() and value.isdigit():
            if len(value.lstrip("0")) > len(str(_ID_MAX)) or int(value) > _ID_MAX:
                raise ValueError(out_of_range)
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value <= _ID_MAX:
                raise ValueError(out_of_range)
            return value
        if (
            isinstance(value, str)
            and len(value) <= _ACCOUNT_NAME_MAX
            and _ACCOUNT_NAME_RE.fullmatch(value)
        ):
            return value
        raise ValueError(f"{help_text}; got {brief(value)}")

    return Custom(lambda value, _ctx: parse(value))


def file_path(value: object, ctx: Ctx) -> Path:
    """A file path: not empty, no NUL, not naming a directory; relative to ``base_dir``.

    The result is absolute and normalised lexically (``/o/../o/x`` is ``/o/x``,
    ``//o`` is ``/o``) without touching the file system; symlinks are compared
    by :func:`load_config`.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a file path")
    if "\0" in value:
        raise ValueError("must not contain a NUL character")
    if value.rsplit("/", 1)[-1] in {"", ".", ".."}:
        raise ValueError("must name a file, not a directory")
    return _absolute(value, ctx)


def _absolute(value: str, ctx: Ctx) -> Path:
    """``value`` made absolute against the ``base_dir`` context, normalised lexically.

    A leading ``~`` is refused: it is not expanded (whose home: the daemon's user,
    under systemd or in a container, is rarely the one who wrote the config), and
    taken literally it would be a directory named ``~`` beside the config file.
    """
    if value.startswith("~"):
        raise ValueError(
            f"`~` is not expanded (whose home it is depends on who runs the daemon), got "
            f"{brief(value)}; write the absolute path (such as /home/app/client.properties) "
            "or a path relative to the config file's directory (./~/… means a directory named ~)"
        )
    text = value
    if not os.path.isabs(text):
        base: Any = ctx.base_dir
        if base is None:
            raise ValueError("must be an absolute path")
        text = os.path.join(os.fspath(base), text)
    # normpath keeps a leading "//"; on Linux it is "/"
    return Path("/" + os.path.normpath(text).lstrip("/"))


def state_dir_path(value: object, ctx: Ctx) -> Path | None:
    """A directory path (or null): no NUL, relative to ``base_dir``, normalised lexically."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a directory path, or null for beside each output")
    if "\0" in value:
        raise ValueError("must not contain a NUL character")
    return _absolute(value, ctx)


FILE_PATH = Custom(file_path)
OPTIONAL_FILE_PATH = Custom(lambda value, ctx: None if value is None else file_path(value, ctx))
STATE_DIR = Custom(state_dir_path)


def null_is_empty_mapping(inner: Kind) -> NullIs:
    """``inner``, where YAML null (``aws:`` with every line below it commented out) is ``{}``."""
    return NullIs(dict, inner)


def null_is_empty_list(inner: Seq) -> NullIs:
    """``inner``, where YAML null is ``[]``."""
    return NullIs(list, inner)


def null_is_empty_map_of(value: Kind) -> NullIs:
    """A mapping of ``value`` items, where YAML null is ``{}``."""
    return NullIs(dict, MapOf(value))
