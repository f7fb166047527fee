"""The status view: what ``GET /status`` answers and how ``secretsync status`` prints it.

:func:`snapshot` builds the document from the syncer and the notifier: for
each output its path, the version id of each source secret, when it was last
written and confirmed, whether it is current and applied, and each target's
last outcome and time; for each secret its version and last check. Ids,
versions, paths, times and fixed words only: never a value, and never an
error's message (an AWS message names the account and the role or session, a
render error the secret's key names): an error is its code and a fixed
description (:func:`describe`); the log line of the failure has the detail.
:func:`format_table` turns that document into a table for a person at a
terminal. Both are pure; this module imports nothing heavy, so the ``status``
command stays light.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from secretsync.source.protocol import THROTTLE_CODES, UNAVAILABLE_CODES

if TYPE_CHECKING:
    from secretsync.notify.notifier import Notifier
    from secretsync.sync.syncer import Syncer


UNKNOWN_CODE = "UnknownError"
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,63}")

# code → what it means, in fixed words; anything else is described as UnknownError
DESCRIPTIONS: dict[str, str] = {
    "AccessDeniedException": "access denied: the IAM policy, the secret's resource policy or "
    "its KMS key does not allow this identity",
    "ResourceNotFoundException": "the secret (or the version asked for) does not exist, "
    "or this identity cannot see it",
    "DecryptionFailure": "the secret cannot be decrypted with its KMS key",
    "InvalidRequestException": "Secrets Manager refused the request (e.g. the secret is "
    "scheduled for deletion)",
    "InvalidParameterException": "Secrets Manager refused a parameter of the request",
    "SecretDeleted": "the secret is scheduled for deletion",
    "NoCurrentVersion": "no version of the secret is staged AWSCURRENT",
    "ThrottlingException": "Secrets Manager throttled the request; it is retried with backoff",
    "InternalServiceError": "Secrets Manager failed to answer; the request is retried with backoff",
    "ConnectionError": "Secrets Manager could not be reached (network, DNS, TLS or a timeout); "
    "the request is retried with backoff",
    "CallTimeout": "Secrets Manager gave no complete answer within aws.call_timeout; "
    "the request is retried with backoff",
    "TooManyOpenFiles": "the daemon ran out of file descriptors; raise its open-files limit",
    "NoCredentials": "no AWS credentials were found",
    "ExpiredTokenException": "the AWS credentials have expired",
    "UnrecognizedClientException": "the AWS credentials are not valid",
    "InvalidSignatureException": "the request signature was refused (credentials or clock)",
    "NotFetched": "no value of the secret has been fetched yet",
    "RenderError": "the secret's value does not fit this output (not a JSON object, a "
    "required key missing, a value the format cannot hold, …); the file is left as it was",
    "WriteError": "the file could not be written (permissions, owner, space, the directory); "
    "the previous file is left as it was",
    UNKNOWN_CODE: "the check failed; the log line of the failure says why",
}
# the source's own classification: every throttling code, and every code that says the
# region could not answer, reads like its family's first member
for _alias in THROTTLE_CODES:
    DESCRIPTIONS.setdefault(_alias, DESCRIPTIONS["ThrottlingException"])
for _alias in UNAVAILABLE_CODES:
    DESCRIPTIONS.setdefault(_alias, DESCRIPTIONS["InternalServiceError"])


def safe_code(code: str | None) -> str:
    """``code`` when it is a plain word (letters, digits, ``_``, ``.``; ≤ 64), else UnknownError.

    Codes come from whoever answered (an endpoint, a proxy): anything else is
    not echoed.
    """
    return code if code is not None and _CODE.fullmatch(code) else UNKNOWN_CODE


def describe(code: str | None) -> str:
    """The fixed description of an error code (see :data:`DESCRIPTIONS`); every code has one."""
    return DESCRIPTIONS.get(safe_code(code), DESCRIPTIONS[UNKNOWN_CODE])


def _error(code: str | None) -> dict[str, str | None]:
    if code is None:
        return {"error": None, "error_description": None}
    return {"error": safe_code(code), "error_description": describe(code)}


def _iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))


def snapshot(syncer: Syncer, notifier: Notifier | None) -> dict[str, Any]:
    """The status document (JSON-ready) of a running daemon."""
    outputs = []
    secrets = syncer.secrets
    for path, state in syncer.outputs.items():
        out = state.config
        targets = []
        for name in out.notify:
            last = notifier.last.get(name) if notifier is not None else None
            targets.append(
                {
                    "name": name,
                    "last_outcome": last.outcome if last else None,
                    "last_at": _iso(last.at) if last else None,
                }
            )
        applied = notifier.applied(str(path)) if notifier is not None else True
        outputs.append(
            {
                "path": str(path),
                "format": out.format,
                "current": syncer.current(state),
                "applied": applied,
                "secrets": {sid: state.versions.get(sid) for sid in out.secret_ids},
                "written_at": _iso(state.written_at),
                "confirmed_at": _iso(state.confirmed_at),
                **_error(None if state.error is None else state.error_code or UNKNOWN_CODE),
                "targets": targets,
            }
        )
    secret_rows = [
        {
            "id": sid,
            "version_id": st.version_id,
            "checked_at": _iso(st.checked_at),
            "ok": st.checked_ok,
            **_error(st.error.code if st.error is not None else None),
        }
        for sid, st in secrets.items()
    ]
    return {
        "current": all(o["current"] for o in outputs),
        "applied": all(o["applied"] for o in outputs),
        "outputs": outputs,
        "secrets": secret_rows,
    }


def healthy(document: Mapping[str, Any]) -> bool:
    """True when every output is current and applied."""
    return bool(document.get("current")) and bool(document.get("applied"))


def _short(version: object) -> str:
    text = str(version) if version else "-"
    return text if len(text) <= 12 else text[:8] + "…"


def _clock(iso: object) -> str:
    # "2026-11-28T12:00:01Z" → "12:00:01"; a date other than today stays whole
    if not isinstance(iso, str) or "T" not in iso:
        return "-"
    date, _, rest = iso.partition("T")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    return rest.rstrip("Z") if date == today else iso


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]


def format_table(document: Mapping[str, Any]) -> str:
    """The status document as two tables (outputs, secrets) and a verdict line."""
    output_rows = []
    for out in document.get("outputs", []):
        targets = ", ".join(
            f"{t['name']}: {t['last_outcome'] or 'not told'}"
            + (f" {_clock(t['last_at'])}" if t.get("last_at") else "")
            for t in out.get("targets", [])
        )
        output_rows.append(
            [
                out["path"],
                "yes" if out.get("current") else "NO",
                "yes" if out.get("applied") else "NO",
                _clock(out.get("written_at")),
                _clock(out.get("confirmed_at")),
                targets or "-",
            ]
        )
    secret_rows = [
        [
            s["id"],
            _short(s.get("version_id")),
            _clock(s.get("checked_at")),
            "ok" if s.get("ok") else (s.get("error") or "not checked"),
        ]
        for s in document.get("secrets", [])
    ]
    lines = _table(["OUTPUT", "CURRENT", "APPLIED", "WRITTEN", "CONFIRMED", "TARGETS"], output_rows)
    lines.append("")
    lines += _table(["SECRET", "VERSION", "CHECKED", "LAST CHECK"], secret_rows)
    lines.append("")
    if healthy(document):
        lines.append("every output is current and applied")
    else:
        not_current = sum(1 for o in document.get("outputs", []) if not o.get("current"))
        not_applied = sum(1 for o in document.get("outputs", []) if not o.get("applied"))
        lines.append(f"{not_current} output(s) not current, {not_applied} not applied")
    return "\n".join(lines)
