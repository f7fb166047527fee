"""backoff.py: exponential with full jitter, the exponent clamped (pure)."""

from __future__ import annotations

import random

from secretsync import backoff


def test_the_ceiling_doubles_then_stays_at_the_cap() -> None:
    assert [backoff.ceiling_s(n) for n in range(0, 10)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert backoff.ceiling_s(-5) == 1
    assert backoff.ceiling_s(30, base_s=0.5, cap_s=60) == 60


def test_any_failure_count_gives_a_delay_within_the_cap() -> None:
    rng = random.Random(7)
    # the old formula, base * 2**failures, overflowed a float after 1,024 failures
    for failures in (1_023, 1_024, 10_000, 10**9, 2**63):
        delay = backoff.delay_s(failures, rng)
        assert 0 <= delay <= backoff.CAP_S
        assert backoff.ceiling_s(failures) == backoff.CAP_S


def test_full_jitter_spreads_delays_over_the_whole_range() -> None:
    rng = random.Random(3)
    delays = [backoff.delay_s(8, rng) for _ in range(2_000)]
    assert min(delays) < 10 and max(delays) > 240  # not all at the ceiling


def test_a_secret_retry_stays_between_half_and_all_of_the_capped_ceiling() -> None:
    rng = random.Random(11)
    for failures in (0, 1, 3, 5, 1_024, 10**9):
        ceiling = backoff.ceiling_s(failures, cap_s=30)
        delays = [backoff.retry_delay_s(failures, rng, cap_s=30) for _ in range(500)]
        assert all(ceiling / 2 <= d <= ceiling <= 30 for d in delays)
        # still jittered: a fleet that failed together does not retry in the same second
        assert max(delays) - min(delays) > ceiling / 4
    # a cap below the base (a 100 ms poll interval) is the cap
    assert 0.05 <= backoff.retry_delay_s(1, rng, cap_s=0.1) <= 0.1
