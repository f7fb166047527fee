"""Config errors for people: one line per problem, each naming its field and what is allowed.

Pure. Every message is bounded: a value echoed back is cut to
:data:`MAX_ECHO_CHARS`, a line to :data:`MAX_LINE_CHARS` and a message to
:data:`MAX_LINES` lines, so a huge or hostile config can never produce a huge
error (or log line on reload).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from secretsync.config.schema import Invalid

MAX_ECHO_CHARS = 80
MAX_PATH_ECHO_CHARS = 200  # paths are legitimately long, and the part that differs is at the end
MAX_LINE_CHARS = 300
MAX_LINES = 50


class ConfigError(Exception):
    """A configuration that cannot be used; ``str()`` is the message for the user.

    The message is bounded on construction (see :func:`bound_message`).
    """

    def __init__(self, message: str) -> None:
        super().__init__(bound_message(message))


def bound_message(message: str) -> str:
    """Cut each line to MAX_LINE_CHARS and keep at most MAX_LINES lines.

    The last kept line then says how many problems were left out.
    """
    lines = message.splitlines() or [""]
    kept = [
        line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 1] + "…"
        for line in lines[:MAX_LINES]
    ]
    if len(lines) > MAX_LINES:
        kept[-1] = f"… and {len(lines) - MAX_LINES + 1} more problems"
    return "\n".join(kept)


def brief(value: object, max_chars: int = MAX_ECHO_CHARS) -> str:
    """A short, bounded description of a config value for an error message.

    Strings, bytes and numbers are shown (cut to about ``max_chars`` with "…");
    a list or mapping is only described ("a list of 3 items"), never printed.
    The work done is bounded too: nothing is repr'd whole.
    """
    if isinstance(value, str | bytes):
        text = repr(value[:max_chars])
        if len(text) > max_chars or len(value) > max_chars:
            what = "characters" if isinstance(value, str) else "bytes"
            return f"{text[:max_chars]}… ({len(value)} {what})"
        return text
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        # str() of a very large int is slow, and refused beyond 4300 digits
        return repr(value) if value.bit_length() <= 128 else "a very large number"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple | set | frozenset):
        return f"a list of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, dict):
        return f"a mapping of {len(value)} key{'' if len(value) == 1 else 's'}"
    return f"a value of type {type(value).__name__}"


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "config"


def format_errors(exc: Invalid) -> str:
    """One line per distinct problem in ``exc``, each naming its field (``outputs[1].mode``).

    Cross-field problems of the whole config (empty location) name their own fields.
    """
    lines = [f"{_format_loc(loc)}: {message}" if loc else message for loc, message in exc.problems]
    return "\n".join(dict.fromkeys(lines))
