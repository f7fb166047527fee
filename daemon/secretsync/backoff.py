"""Backoff policy: exponential with full jitter, the exponent clamped. Pure: no clock, no I/O.

Used for transient AWS failures (per secret), for a poll cycle that raised,
and for restarting a supervised task. Like consul-template's retry config,
the exponent is clamped, so a failure count of any size (an outage of weeks,
credentials that never work) gives a delay in ``[0, cap_s]`` and never an
``OverflowError``.
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
