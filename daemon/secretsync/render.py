"""Pure renderers: secret values + static properties → the bytes of one output file.

No I/O, no clock: the same inputs always give the same bytes, so an unchanged
secret never rewrites a file nor wakes a process. Error messages name secret
ids and keys, never values.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

import javaproperties

from secretsync.config import OutputConfig, SecretRef

HEADER = "Managed by secretsync; do not edit: changes are overwritten."


class RenderError(Exception):
    """The output cannot be rendered from these values; the message holds no secret value."""


@dataclass(frozen=True, repr=False)
class SecretValue:
    """One fetched version of a secret. ``repr`` never shows the value."""

    secret_id: str
    version_id: str
    text: str | None = None
    binary: bytes | None = None

    def __repr__(self) -> str:
        return f"SecretValue(secret_id={self.secret_id!r}, version_id={self.version_id!r})"


def _scalar(secret_id: str, key: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    kind = "null" if value is None else type(value).__name__.replace("dict", "object")
    raise RenderError(
        f"secret {secret_id!r}: key {key!r} holds a {kind}; only strings, numbers "
        "and booleans can be written"
    )


def _pairs(ref: SecretRef, value: SecretValue) -> dict[str, str]:
    if value.text is None:
        if ref.as_key is not None and value.binary is not None:
            try:
                return {ref.as_key: value.binary.decode("utf-8")}
            except UnicodeDecodeError:
                raise RenderError(f"secret {ref.id!r}: binary secret is not UTF-8 text") from None
        raise RenderError(f"secret {ref.id!r}: has no SecretString (binary secrets need `as`)")
    if ref.as_key is not None:
        return {ref.as_key: value.text}
    try:
        data = json.loads(value.text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise RenderError(
            f"secret {ref.id!r}: is not a JSON object; set `as: <key>` on this source to "
            "write the whole string under one key"
        )
    if ref.keys is None:
        return {key: _scalar(ref.id, key, item) for key, item in data.items()}
    mapping = dict(zip(ref.keys, ref.keys, strict=True)) if isinstance(ref.keys, list) else ref.keys
    missing = [key for key in mapping if key not in data]
    if missing:
        raise RenderError(
            f"secret {ref.id!r}: missing required key(s) {', '.join(map(repr, missing))}; "
            f"it has {', '.join(map(repr, sorted(data))) or 'no keys'}"
        )
    return {out_key: _scalar(ref.id, key, data[key]) for key, out_key in mapping.items()}


def collect(output: OutputConfig, values: Mapping[str, SecretValue]) -> dict[str, str]:
    """Merge the output's static properties and its secrets into one key → value map.

    ``values`` maps secret id → fetched value; every secret of the output must be
    present. Raises RenderError for a missing secret, a non-JSON secret without
    ``as``, a missing required key, a nested value, or a key given by two sources.
    """
    merged: dict[str, str] = dict(output.static)
    origin = dict.fromkeys(output.static, "static")
    for ref in output.secrets:
        value = values.get(ref.id)
        if value is None:
            raise RenderError(f"secret {ref.id!r}: no value fetched yet")
        for key, item in _pairs(ref, value).items():
            if key in origin:
                raise RenderError(
                    f"key {key!r} is given by both {origin[key]} and secret {ref.id!r}; "
                    "restrict one source with `keys`"
                )
            origin[key] = f"secret {ref.id!r}"
            merged[key] = item
    return merged


def render_properties(props: Mapping[str, str], sources: list[str]) -> bytes:
    """Java ``.properties`` as ``Properties.load(InputStream)`` reads it (ISO-8859-1).

    Keys are sorted, non-ASCII is written as ``\\uXXXX``, newlines and other
    specials are escaped so a value can never start a new key, and there is no
    timestamp comment.
    """
    comments = HEADER + "\nSources: " + ", ".join(sources)
    text = javaproperties.dumps(
        props,
        comments=comments,
        timestamp=False,
        sort_keys=True,
        ensure_ascii=True,
        ensure_ascii_comments=True,
    )
    return text.encode("iso-8859-1")


def render_json(props: Mapping[str, str]) -> bytes:
    """A JSON object with sorted keys, two-space indent, UTF-8, trailing newline."""
    return (json.dumps(dict(props), sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


_ENV_BAD = re.compile(r"[^A-Za-z0-9]")


def env_key(key: str) -> str:
    """``sasl.jaas.config`` → ``SASL_JAAS_CONFIG``; a leading digit gets a ``_`` prefix."""
    name = _ENV_BAD.sub("_", key).upper()
    return "_" + name if not name or name[0].isdigit() else name


def render_env(props: Mapping[str, str], sources: list[str]) -> bytes:
    """``KEY='value'`` lines, single-quoted for POSIX shells and systemd EnvironmentFile.

    Raises RenderError when two keys map to one variable name (``a.b`` and ``a_b``).
    """
    names: dict[str, str] = {}
    for key in props:
        name = env_key(key)
        if name in names:
            raise RenderError(f"keys {names[name]!r} and {key!r} both become variable {name}")
        names[name] = key
    lines = [f"# {HEADER}", "# Sources: " + ", ".join(sources)]
    lines += [f"{name}={shlex.quote(props[key])}" for name, key in sorted(names.items())]
    return ("\n".join(lines) + "\n").encode()


def render(output: OutputConfig, values: Mapping[str, SecretValue]) -> bytes:
    """Render one output from fetched secret values (see :func:`collect` for errors)."""
    props = collect(output, values)
    if output.format == "json":
        return render_json(props)
    if output.format == "env":
        return render_env(props, output.secret_ids)
    return render_properties(props, output.secret_ids)
