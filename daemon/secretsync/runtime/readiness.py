"""What the daemon tells systemd about itself, from the syncer's state: the policy over
the sd_notify protocol (:mod:`secretsync.runtime.sdnotify` only speaks it).

- ``READY=1`` after the first cycle in which every output is current (a failing
  first sync never claims readiness, so a unit ordered after secretsync starts
  only once its files exist), then ``STATUS=`` with a summary after each cycle;
- the watchdog is petted only while cycles keep starting (:func:`alive`).
"""

from __future__ import annotations

import time
from typing import Any

from secretsync.runtime.sdnotify import SdNotifier
from secretsync.state import CycleReport
from secretsync.sync.poller import Poller
from secretsync.sync.syncer import Syncer

# A loop that has not started a cycle for this long (beyond the poll interval) is
# stuck on something (a hung await), even if it still runs tasks: stop petting.
STALL_GRACE_S = 300.0


def report_cycles(sd: SdNotifier, syncer: Syncer, poller: Poller) -> None:
    """Tell systemd about every cycle of ``poller`` (READY once, then STATUS)."""
    if sd.enabled:
        poller.add_cycle_hook(lambda report: on_cycle(sd, syncer, report))


def on_cycle(sd: SdNotifier, syncer: Syncer, report: CycleReport) -> None:
    """After a cycle: ``READY=1`` the first time every output is current, else ``STATUS=``."""
    text = summary(syncer, report)
    if not sd.ready_sent and syncer.all_current():
        sd.ready(text)
    else:
        sd.status(text)


def alive(syncer: Syncer) -> bool:
    """False when no cycle started for an interval plus ``STALL_GRACE_S`` (a hung await)."""
    started = syncer.last_cycle_started
    if started is None:
        return True  # the first cycle is about to start
    limit_s = syncer.config.poll.interval_s * (1 + syncer.config.poll.jitter) + STALL_GRACE_S
    return time.monotonic() - started < limit_s


def summary(syncer: Syncer, report: CycleReport) -> str:
    """A short human status line from counts only (never a value, never an error text)."""
    outputs = syncer.outputs
    current = sum(1 for st in outputs.values() if syncer.current(st))
    parts: list[Any] = [f"{current}/{len(outputs)} outputs current"]
    if report.files_written:
        parts.append(f"{len(report.files_written)} written")
    if report.secrets_changed:
        parts.append(f"{len(report.secrets_changed)} secrets changed")
    if report.errors:
        parts.append(f"{report.errors} errors")
    parts.append(f"cycle {report.duration_s:.2f}s")
    return ", ".join(parts)
