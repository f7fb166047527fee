"""Which secret a Secrets Manager event names. Pure: no I/O, no clock.

Secrets Manager emits an EventBridge event when a staging label moves
(``source: aws.secretsmanager``, ``detail-type: "Secret Label Updated"``), and
CloudTrail-based events (``AWS API Call via CloudTrail`` for
``PutSecretValue``, ``UpdateSecretVersionStage``, ``RotateSecret``; ``AWS
Service Event via CloudTrail`` for ``RotationSucceeded``). Through SQS a
message body is the event itself (EventBridge → SQS, or SNS with raw
delivery) or an SNS envelope whose ``Message`` is the event.

An event is only a hint: :func:`match` says which of our secrets it may
concern, and the daemon then checks those through the normal path. Nothing
here looks at, keeps or returns a value, and a body is never logged.

Hostile bodies cost little: a body that cannot be parsed for any reason
(nested thousands of levels deep included) is ``invalid``; at most
:data:`MAX_NAMES` names are read from one message, each looked up in a dict
(:class:`SecretIndex`), so a message costs O(its names), not O(names × secrets).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

MAX_BODY_BYTES = 256 * 1024  # SQS's own limit; anything longer is not one of these events
MAX_NAMES = 100  # names read per message: an event of AWS names one or two secrets
MAX_NAME_CHARS = 2048  # a secret ARN is far shorter; a longer string names no secret
_ARN_RE = re.compile(
    r"^arn:(?P<partition>[a-z-]+):secretsmanager:(?P<region>[a-z0-9-]*):(?P<account>[0-9]*):"
    r"secret:(?P<name>.+)$"
)
_FULL_ARN_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")  # AWS adds "-" and six characters

Outcome = Literal["matched", "ignored", "invalid"]


@dataclass(frozen=True)
class SecretKey:
    """A secret as events and configs name it: its name, and account/region when known."""

    name: str
    account: str | None = None
    region: str | None = None

    def same(self, other: SecretKey) -> bool:
        """Same name, and no contradicting account or region where both are known."""
        if self.name != other.name:
            return False
        for mine, theirs in ((self.account, other.account), (self.region, other.region)):
            if mine and theirs and mine != theirs:
                return False
        return True


def keys_of(secret_id: str) -> tuple[SecretKey, ...]:
    """The :class:`SecretKey` a name or ARN may stand for.

    A full ARN ends with the ``-`` and six characters AWS appends to the name;
    a partial ARN (as a config or a caller may write it) does not, and a name
    may end like that by itself. So an ARN whose name looks suffixed gives
    both readings; a plain name gives itself.
    """
    found = _ARN_RE.match(secret_id)
    if found is None:
        return (SecretKey(secret_id),)
    name = found.group("name")
    account, region = found.group("account") or None, found.group("region") or None
    keys = [SecretKey(name, account, region)]
    stripped = _FULL_ARN_SUFFIX.sub("", name)
    if stripped != name and stripped:
        keys.append(SecretKey(stripped, account, region))
    return tuple(keys)


class SecretIndex:
    """Our secret ids (names or ARNs) by the name each may stand for; build once per config.

    :meth:`lookup` finds the ids a :class:`SecretKey` of an event may be in
    O(1), so a message costs the same against 10 configured secrets as against
    10,000. ``ids`` keeps the config's order (each id once).
    """

    def __init__(self, ours: Iterable[str]) -> None:
        self.ids: tuple[str, ...] = tuple(dict.fromkeys(ours))
        self._order = {secret_id: n for n, secret_id in enumerate(self.ids)}
        self._by_name: dict[str, list[tuple[SecretKey, str]]] = {}
        for secret_id in self.ids:
            for key in keys_of(secret_id):
                self._by_name.setdefault(key.name, []).append((key, secret_id))

    def __repr__(self) -> str:
        return f"SecretIndex(ids={len(self.ids)})"

    def lookup(self, key: SecretKey) -> Iterator[str]:
        """The ids of ours that ``key`` may name (same name, no contradicting account/region)."""
        for mine, secret_id in self._by_name.get(key.name, ()):
            if mine.same(key):
                yield secret_id

    def in_order(self, secret_ids: Iterable[str]) -> tuple[str, ...]:
        """``secret_ids`` (ours) in the config's order, each once."""
        return tuple(sorted(set(secret_ids), key=self._order.__getitem__))


@dataclass(frozen=True)
class Verdict:
    """What a message means for us: ``secret_ids`` of ours to check now (when matched)."""

    outcome: Outcome
    secret_ids: tuple[str, ...] = ()
    reason: str = ""  # for the log: a fixed phrase, never part of the body


def _unwrap(body: str) -> Mapping[str, Any] | None:
    """The event in a message body: itself, or the ``Message`` of an SNS envelope."""
    if len(body) > MAX_BODY_BYTES:
        return None
    data = _parse(body)
    if not isinstance(data, dict):
        return None
    if data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        inner = _parse(data["Message"])
        return inner if isinstance(inner, dict) else None
    return data


def _parse(text: str) -> object:
    """The JSON value of ``text``, or None when it is not JSON for any reason.

    ``json.loads`` raises RecursionError (not ValueError) on a body nested
    about a thousand levels deep: that is a malformed message too.
    """
    try:
        return json.loads(text)
    except (ValueError, RecursionError, MemoryError):
        return None


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        yield from (item for item in value if isinstance(item, str))


def _get(mapping: object, *path: str) -> object:
    for part in path:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(part)
    return mapping


_DETAIL_PATHS = (
    ("name",),
    ("arn",),
    ("aRN",),
    ("requestParameters", "secretId"),
    ("responseElements", "arn"),
    ("additionalEventData", "SecretId"),
    ("serviceEventDetails", "secretId"),
)


def named_secrets(event: Mapping[str, Any], limit: int = MAX_NAMES) -> list[str]:
    """The secret names or ARNs the event names, in the places AWS puts them.

    At most ``limit`` strings are read (``resources`` first, then ``detail``);
    empty strings and strings longer than any ARN are skipped.
    """
    detail = event.get("detail")
    places = itertools.chain(
        _strings(event.get("resources")),
        *(_strings(_get(detail, *path)) for path in _DETAIL_PATHS),
    )
    found = itertools.islice(places, limit)
    return [item for item in dict.fromkeys(found) if item and len(item) <= MAX_NAME_CHARS]


def match(body: str, ours: SecretIndex | Iterable[str]) -> Verdict:
    """Classify one message body against our secret ids (names or ARNs). Never raises.

    ``invalid``: not JSON (for any reason, deep nesting included), not an
    object, or not a Secrets Manager event at all. ``ignored``: a Secrets
    Manager event that names none of our secrets (among its first
    :data:`MAX_NAMES` names). ``matched``: the ids of ours it names, in the
    config's order. Pass a :class:`SecretIndex` to match many messages
    against one config.
    """
    index = ours if isinstance(ours, SecretIndex) else SecretIndex(ours)
    event = _unwrap(body)
    if event is None:
        return Verdict("invalid", reason="not a JSON object (nor an SNS envelope holding one)")
    if event.get("source") != "aws.secretsmanager" and "detail" not in event:
        return Verdict("invalid", reason="not a Secrets Manager event")
    named = [key for item in named_secrets(event) for key in keys_of(item)]
    if not named:
        return Verdict("ignored", reason="names no secret")
    hits = index.in_order(secret_id for key in named for secret_id in index.lookup(key))
    if not hits:
        return Verdict("ignored", reason="names none of our secrets")
    return Verdict("matched", hits)
