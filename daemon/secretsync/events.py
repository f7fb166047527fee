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
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

MAX_BODY_BYTES = 256 * 1024  # SQS's own limit; anything longer is not one of these events
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
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        try:
            inner = json.loads(data["Message"])
        except ValueError:
            return None
        return inner if isinstance(inner, dict) else None
    return data


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


def named_secrets(event: Mapping[str, Any]) -> list[str]:
    """Every secret name or ARN the event names, in the places AWS puts them."""
    detail = event.get("detail")
    found: list[str] = list(_strings(event.get("resources")))
    for path in (
        ("name",),
        ("arn",),
        ("aRN",),
        ("requestParameters", "secretId"),
        ("responseElements", "arn"),
        ("additionalEventData", "SecretId"),
        ("serviceEventDetails", "secretId"),
    ):
        found.extend(_strings(_get(detail, *path)))
    return [item for item in dict.fromkeys(found) if item]


def match(body: str, ours: Iterable[str]) -> Verdict:
    """Classify one message body against our secret ids (names or ARNs).

    ``invalid``: not JSON, not an object, or not a Secrets Manager event at
    all. ``ignored``: a Secrets Manager event that names none of our secrets.
    ``matched``: the ids of ours it names.
    """
    event = _unwrap(body)
    if event is None:
        return Verdict("invalid", reason="not a JSON object (nor an SNS envelope holding one)")
    if event.get("source") != "aws.secretsmanager" and "detail" not in event:
        return Verdict("invalid", reason="not a Secrets Manager event")
    named = [key for item in named_secrets(event) for key in keys_of(item)]
    if not named:
        return Verdict("ignored", reason="names no secret")
    hits = tuple(
        secret_id
        for secret_id in dict.fromkeys(ours)
        if any(mine.same(key) for mine in keys_of(secret_id) for key in named)
    )
    if not hits:
        return Verdict("ignored", reason="names none of our secrets")
    return Verdict("matched", hits)
