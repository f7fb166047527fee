"""Login settings derived from a username and a password: pure text, no I/O.

``sasl`` writes ``sasl.jaas.config`` (and ``sasl.mechanism``); ``basic_auth``
writes ``basic.auth.user.info`` (and ``basic.auth.credentials.source``). The
output format escapes the result again afterwards, as for any value.

The JAAS value is read by Kafka's ``JaasConfig`` (and the same text is read
alike by the JDK's login-configuration file parser): both tokenize with
``java.io.StreamTokenizer``, where a double-quoted string ends at ``"`` and
``\\`` escapes the next character. So a username or password is written
between double quotes with ``\\`` and ``"`` preceded by a backslash; nothing
else needs escaping there (``;``, ``=``, ``{``, ``}``, ``'``, ``/``, spaces and
any non-ASCII are plain characters inside quotes).

Control characters (U+0000-U+001F, U+007F-U+009F) are refused: a line break
ends a quoted string in both parsers, NUL separates the fields of a SASL/PLAIN
message, HTTP basic auth (RFC 7617) forbids them all, and no credential
generator makes them, so one means a broken secret (often a trailing newline).
Errors name the secret, the section and the key, never a value.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

from secretsync.config.creds import (
    CREDENTIALS_SOURCE_KEY,
    JAAS_KEY,
    MECHANISM_KEY,
    USER_INFO_KEY,
    Credentials,
    SaslConfig,
)
from secretsync.escapes import jaas_quote


class CredentialError(ValueError):
    """A username or password cannot be used; the message holds no secret value."""


def surrogate_at(text: str) -> int | None:
    """Index of the first lone UTF-16 surrogate (not valid Unicode text), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def control_at(text: str) -> int | None:
    """Index of the first control character (Unicode category Cc), or None."""
    return next((i for i, c in enumerate(text) if unicodedata.category(c) == "Cc"), None)


def key_list(keys: list[str]) -> str:
    """Keys for a message; a key that is not valid text is counted, never printed."""
    good = sorted(key for key in keys if surrogate_at(key) is None)
    bad = len(keys) - len(good)
    text = ", ".join(map(repr, good))
    if bad:
        text += f"{', ' if text else ''}{bad} key(s) that are not valid Unicode text"
    return text or "no keys"


def jaas_config(login_module: str, username: str, password: str) -> str:
    """``<module> required username="…" password="…";`` with both values quoted."""
    return (
        f"{login_module} required username={jaas_quote(username)} password={jaas_quote(password)};"
    )


def kind_of(value: object) -> str:
    """What a JSON value is, for an error message (``null``, ``a list``, ``an object``, …)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a value of type {type(value).__name__}"


def credential(where: str, key: str, value: object) -> str:
    """The username or password held under ``key``, checked.

    ``where`` starts the message (``secret 'id': sasl``). Raises
    CredentialError for a value that is not a JSON string (a number too: an
    API key or password is text, and ``007`` cannot be a JSON number), is
    empty, is not valid Unicode text, or holds a control character.
    """
    if not isinstance(value, str):
        raise CredentialError(
            f"{where}: key {key!r} holds {kind_of(value)}; a username or password must be "
            "a JSON string"
        )
    if not value:
        raise CredentialError(f"{where}: key {key!r} is empty")
    at = surrogate_at(value)
    if at is not None:
        raise CredentialError(
            f"{where}: key {key!r} holds text that is not valid Unicode (a lone surrogate "
            f"at character {at + 1} of {len(value)})"
        )
    at = control_at(value)
    if at is not None:
        raise CredentialError(
            f"{where}: key {key!r} holds control character U+{ord(value[at]):04X} at "
            f"character {at + 1} of {len(value)}; a username or password cannot contain "
            "control characters"
        )
    return value


def derive(creds: Credentials, secret_id: str, data: Mapping[str, object]) -> list[tuple[str, str]]:
    """The ``(output key, value)`` pairs ``creds`` writes, from the JSON object ``data``.

    Raises CredentialError when a key is missing (naming every missing key and
    the keys the secret has), for a value :func:`credential` refuses, or, for
    ``basic_auth``, a username containing ``:`` (the separator of
    ``basic.auth.user.info``; a password may contain it).
    """
    where = f"secret {secret_id!r}: {creds.section}"
    user_key, password_key = creds.credential_keys()
    missing = [key for key in (user_key, password_key) if key not in data]
    if missing:
        raise CredentialError(
            f"{where} needs key(s) {key_list(missing)}, which the secret does not have; it "
            f"has {key_list(list(data))} (set `{creds.section}.username_key` and "
            f"`{creds.section}.password_key` to the keys that hold them)"
        )
    username = credential(where, user_key, data[user_key])
    password = credential(where, password_key, data[password_key])
    if isinstance(creds, SaslConfig):
        return [
            (JAAS_KEY, jaas_config(creds.login_module, username, password)),
            (MECHANISM_KEY, creds.mechanism),
        ]
    if ":" in username:
        raise CredentialError(
            f"{where}: the username (key {user_key!r}) contains ':', which "
            f"{USER_INFO_KEY} uses to separate the username from the password"
        )
    return [(USER_INFO_KEY, f"{username}:{password}"), (CREDENTIALS_SOURCE_KEY, "USER_INFO")]
