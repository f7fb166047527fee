"""The status view: what ``GET /status`` answers and how ``secretsync status`` prints it.

:func:`snapshot` builds the document from the syncer and the notifier: for
each output its path, the version id of each source secret, when it was last
written and confirmed, whether it is current and applied, and each target's
last outcome and time; for each secret its version and last check. Ids,
versions, paths, times and fixed words only: never a value.
:func:`format_table` turns that document into a table for a person at a
terminal. Both are pure; this module imports nothing heavy, so the ``status``
command stays light.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from secretsync.notify import Notifier
    from secretsync.syncer import Syncer


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
                "confirmed_at": _iso(state.synced_at),
                "error": state.error,
                "targets": targets,
            }
        )
    secret_rows = [
        {
            "id": sid,
            "version_id": st.version_id,
            "checked_at": _iso(st.checked_at),
            "ok": st.checked_ok,
            "error": st.error.code if st.error is not None else None,
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
