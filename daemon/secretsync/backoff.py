"""Backoff policy: exponential with jitter, the exponent clamped. Pure: no clock, no I/O.

:func:`delay_s` (full jitter, up to a fixed cap) is used for a poll cycle that
raised, for restarting a supervised task and for setting up push. The retries
of one secret after transient AWS failures use :func:`retry_delay_s`, capped
by the caller at the poll interval: an outage of any length is noticed within
one poll of its end, and a secret in backoff is never checked more often than
twice per interval. Like consul-template's retry config, the exponent is
clamped, so a failure count of any size (an outage of weeks, credentials that
never work) gives a delay within the cap and never an ``OverflowError``.
"""

from __future__ import annotations

import random

BASE_S = 1.0
CAP_S = 300.0
MAX_EXPONENT = 30  # 2**30 s is far above any cap; beyond it the cap always applies


def ceiling_s(failures: int, *, base_s: float = BASE_S, cap_s: float = CAP_S) -> float:
    """The largest delay after ``failures`` consecutive failures: ``min(cap, base·2^failures)``.

    ``failures`` below 1 gives ``base_s`` (capped). Never raises.
    """
    exponent = min(max(failures, 0), MAX_EXPONENT)
    return min(cap_s, base_s * 2.0**exponent)


def delay_s(
    failures: int, rng: random.Random, *, base_s: float = BASE_S, cap_s: float = CAP_S
) -> float:
    """A delay drawn uniformly from ``[0, ceiling_s(failures)]`` ("full jitter").

    Full jitter spreads the retries of a fleet that failed together (one
    regional outage) instead of having every sidecar retry in the same second.
    """
    return rng.uniform(0.0, ceiling_s(failures, base_s=base_s, cap_s=cap_s))


def retry_delay_s(
    failures: int, rng: random.Random, *, cap_s: float, base_s: float = BASE_S
) -> float:
    """A delay drawn uniformly from ``[c/2, c]``, ``c = ceiling_s(failures, cap_s=cap_s)``.

    "Equal jitter": the retries of a fleet that failed together are still
    spread over half the ceiling, but the delay never falls far below it, so
    once the ceiling reaches ``cap_s`` (the poll interval, for a secret) the
    retries come at most twice as often as regular polls would, and never
    later than one cap after the previous one. Never raises.
    """
    ceiling = ceiling_s(failures, base_s=base_s, cap_s=cap_s)
    return rng.uniform(ceiling / 2, ceiling)
