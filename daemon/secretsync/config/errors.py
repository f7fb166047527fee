"""Config errors for people: pydantic's errors in our words, each line naming its field.

Pure. Every message is bounded: a value echoed back is cut to
:data:`MAX_ECHO_CHARS`, a line to :data:`MAX_LINE_CHARS` and a message to
:data:`MAX_LINES` lines, so a huge or hostile config can never produce a huge
error (or log line on reload).
"""

from __future__ import annotations

import re
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

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


def _is_model(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc`` (for listing allowed keys)."""
    current: Any = root
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next(
                (f for name, f in current.model_fields.items() if part in (name, f.alias)), None
            )
            if field is None:
                return None
            current = field.annotation
        elif isinstance(part, int):
            current = next(iter(getattr(current, "__args__", ())), None)
        else:
            args: tuple[Any, ...] = getattr(current, "__args__", ())
            current = args[-1] if len(args) == 2 else None
        if get_origin(current) in (Union, UnionType):  # X | None
            models = [a for a in get_args(current) if _is_model(a)]
            current = models[0] if models else None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _allowed_keys(model: type[BaseModel] | None) -> str:
    if model is None:
        return "see the configuration reference"
    return ", ".join(f.alias or name for name, f in model.model_fields.items())


# pydantic adds the member type to the location of a union's errors
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|list\[.*\]|dict\[.*\]|function-.*)$")
_UNION_HELP = {
    "keys": "expected a list of keys or a mapping {secret_key: output_key}",
}
_BOUND_WORDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
# an empty list where at least one item is needed, by field name
_AT_LEAST_ONE = {
    "outputs": "at least one output is required",
    "secrets": "at least one secret is required",
    "command": "at least one word (the program to run) is required",
}
# pydantic's type errors, in our words (the value given is appended)
_TYPE_WORDS = {
    "string_type": "expected a string",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping (key: value)",
    "path_type": "expected a file path",
}


def _message(err: Any, root: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """The text after ``field:`` for one pydantic error."""
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    given = brief(err.get("input"))
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    if kind == "literal_error":
        return "allowed: " + str(ctx.get("expected", "")) + f"; got {given}"
    if kind.startswith(("greater_than", "less_than")):
        bounds = " and ".join(f"{_BOUND_WORDS.get(k, k)} {v}" for k, v in ctx.items())
        return f"out of range: allowed {bounds}; got {given}"
    if kind == "too_short":
        name = str(loc[-1]) if loc else ""
        return _AT_LEAST_ONE.get(name, f"needs at least {ctx.get('min_length', 1)} items")
    if kind == "too_long":
        return f"too many items: at most {ctx.get('max_length')} allowed"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"too long: at most {ctx.get('max_length')} characters allowed"
    if kind in ("model_type", "model_attributes_type"):
        allowed = _allowed_keys(_model_at(root, loc))
        return f"expected a mapping with keys from: {allowed}; got {given}"
    if kind in _TYPE_WORDS:
        return f"{_TYPE_WORDS[kind]}, got {given}"
    # anything else: pydantic's text in our voice; it never includes the input
    return str(err["msg"]).replace("Input should be", "expected", 1)


def format_errors(exc: ValidationError, root: type[BaseModel]) -> str:
    """One line per distinct problem in ``exc``, each naming its field (``outputs[1].mode``).

    ``root`` is the model that was validated (to list the allowed keys of a
    mapping). Cross-field errors (empty location) name their own fields.
    """
    lines = []
    for err in exc.errors(include_url=False, include_context=True, include_input=True):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and _UNION_TAG.match(p)))
        field = _format_loc(loc)
        if not loc:
            lines.append(str(err["msg"]).removeprefix("Value error, "))
        elif len(loc) < len(err["loc"]) and str(loc[-1]) in _UNION_HELP:
            lines.append(f"{field}: {_UNION_HELP[str(loc[-1])]}")
        elif err["type"] == "extra_forbidden":
            lines.append(
                f"{field}: unknown field; allowed: {_allowed_keys(_model_at(root, loc[:-1]))}"
            )
        else:
            lines.append(f"{field}: {_message(err, root, loc)}")
    # one line per distinct problem; unions repeat the same location several times
    return "\n".join(dict.fromkeys(lines))
