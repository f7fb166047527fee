"""push.HintGate: per-secret coalescing of push hints (pure: the test passes the time)."""

from __future__ import annotations

import itertools

from secretsync.push.listener import FLOOD_HINTS, HintGate


def test_the_first_hint_goes_at_once_and_a_burst_becomes_one_trailing_check() -> None:
    gate = HintGate(window_s=1.0, window_max_s=30.0)
    assert gate.offer(["a", "b", "a"], now=100.0) == ["a", "b"]
    for n in range(5):
        assert gate.offer(["a"], now=100.1 + n / 10) == []
    assert gate.next_due() == 101.0
    assert gate.due(100.9) == []
    assert gate.due(101.0) == ["a"]  # the trailing check: a rotation inside the burst is seen
    assert gate.due(200.0) == []  # nothing held any more
    assert gate.stats.sent == 3 and gate.stats.coalesced == 5


def test_a_sustained_flood_widens_the_window_and_a_quiet_one_narrows_it() -> None:
    gate = HintGate(window_s=1.0, window_max_s=8.0)
    sent: list[float] = []
    for tick in range(6000):  # a hint every 10 ms for a minute
        now = tick / 100
        if gate.due(now) or gate.offer(["a"], now):
            sent.append(now)
    # 0, 1, 3, 7, then every 8 s (the cap): not 6,000 checks
    assert sent[:4] == [0.0, 1.0, 3.0, 7.0]
    assert len(sent) <= 4 + 60 // 8 + 1
    assert all(b - a <= 8.0 + 0.02 for a, b in itertools.pairwise(sent))
    # quiet for a window: the next hint goes at once and the window is short again
    last = sent[-1]
    assert gate.due(last + 100) in ([], ["a"])
    assert gate.offer(["a"], last + 200) == ["a"]
    assert gate.offer(["a"], last + 200.5) == []
    assert gate.due(last + 201) == ["a"]


def test_a_few_hints_per_window_never_widen_it() -> None:
    # a rotation sends two or three events: the window stays short (rotation → file fast)
    gate = HintGate(window_s=1.0, window_max_s=30.0)
    now = 0.0
    for _ in range(20):
        gate.offer(["a"], now)
        for n in range(FLOOD_HINTS - 2):
            gate.offer(["a"], now + 0.1 + n / 100)
        assert gate.due(now + 1.0) == ["a"]
        now += 1.0
    assert (due := gate.next_due()) is None or due <= now + 1.0


def test_a_secret_in_backoff_is_not_hinted_until_the_backoff_ends() -> None:
    retry_at = {"a": 50.0}
    gate = HintGate(retry_at.get, window_s=1.0)
    assert gate.offer(["a", "b"], now=10.0) == ["b"]
    assert gate.stats.in_backoff == 1
    assert gate.offer(["a"], now=20.0) == []
    # held, then the backoff is still on when its window ends: dropped, not sent
    assert gate.offer(["b"], now=10.5) == []
    retry_at["b"] = 30.0
    assert gate.due(11.0) == []
    assert gate.pending() == []
    assert gate.offer(["a"], now=50.0) == ["a"]  # the backoff is over


def test_forget_drops_secrets_no_longer_configured() -> None:
    gate = HintGate(window_s=1.0)
    gate.offer(["a", "b"], now=0.0)
    gate.offer(["a", "b"], now=0.5)
    gate.forget(["b"])
    assert gate.pending() == ["b"]
