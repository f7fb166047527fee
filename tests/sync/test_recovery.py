"""Recovery within one poll of the backend returning, however long the outage lasted.

The outage is real every time: the fault proxy in front of moto stops
listening, so each check during it is a refused connection through the real
aioboto3 adapter, and the check that ends it is a real answer from moto. The
10- and 60-minute outages are compressed: the syncer and the poller's
schedule run on a fake monotonic clock that jumps to each wake-up the poller
asks for, so an hour of retries takes seconds. One daemon also goes through a
one-minute outage in real time.
"""

from __future__ import annotations

import functools
import io
import time
from pathlib import Path
from typing import Any

import pytest

from secretsync.config.model import parse_config
from secretsync.metrics import Metrics
from secretsync.output.writer import OutputWriter
from secretsync.source.secretsmanager import SecretsManagerSource
from secretsync.state import CycleReport
from secretsync.sync.poller import Poller
from secretsync.sync.syncer import Syncer
from tests.support.configs import example_config, write_yaml
from tests.support.daemon import Daemon
from tests.support.faultproxy import FaultProxy
from tests.support.harness import FakeClock, UpperBound
from tests.support.motoserver import Moto
from tests.support.seeds import CANARY_PASSWORD, KAFKA_ID, REGION, SR_ID, kafka_secret
from tests.support.wait import wait_until

INTERVAL_S = 20.0
SLACK_S = 2.0  # what the bound allows beyond one poll interval


class Schedule:
    """The poller's timing, step by step on a fake clock: each step jumps to the wake-up
    :meth:`Poller.next_wake` asks for and runs that cycle, as :meth:`Poller.run` does."""

    def __init__(self, poller: Poller, clock: FakeClock) -> None:
        self.poller, self.clock = poller, clock
        self.next_regular = clock.now

    async def step(self) -> CycleReport:
        wake_at, regular = self.poller.next_wake(self.next_regular)
        self.clock.now = max(self.clock.now, wake_at)
        report = await self.poller.syncer.cycle(regular=regular)
        if regular:
            self.next_regular = self.clock.now + self.poller.interval_s()
        return report


def failing(syncer: Syncer) -> bool:
    return any(not st.checked_ok for st in syncer.secrets.values())


@pytest.mark.parametrize("minutes", [1, 10, 60])
async def test_after_an_outage_of_any_length_the_first_check_comes_within_one_poll(
    moto: Moto, proxy: FaultProxy, tmp_path: Path, log_buffer: io.StringIO, minutes: int
) -> None:
    moto.seed_use_case()
    data = example_config(tmp_path, proxy.url, poll={"interval": f"{INTERVAL_S}s", "jitter": 0.1})
    config = parse_config(data)
    clock = FakeClock()
    attempts: list[tuple[str, str]] = []
    metrics = Metrics()
    writer = OutputWriter(metrics)
    # one HTTP attempt per call: the client's own retries sleep in real time, and the
    # backoff between checks is what this test is about
    async with SecretsManagerSource(
        region=REGION,
        endpoint_url=proxy.url,
        max_attempts=1,
        connect_timeout_s=1,
        on_request=lambda *a: attempts.append(a),
    ) as source:
        try:
            # UpperBound: every jitter at its maximum, the longest waits the daemon can draw
            syncer = Syncer(config, source, writer, metrics=metrics, clock=clock, rng=UpperBound())
            writer.manage([o.path for o in config.outputs])
            schedule = Schedule(Poller(syncer, clock=clock, rng=UpperBound()), clock)
            await schedule.step()
            assert syncer.all_current()

            proxy.down()
            down_at = clock.now
            moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-during-outage"))
            attempts.clear()
            # the outage lasts `minutes`, and ends just after a check failed: the worst
            # moment, the daemon has just missed it
            while True:
                report = await schedule.step()
                if (
                    clock.now >= down_at + minutes * 60
                    and report.secrets_checked
                    and failing(syncer)
                ):
                    break
            during = len(attempts)
            proxy.up()
            returned_at = clock.now

            while failing(syncer):
                await schedule.step()
            recovered_at = clock.now
        finally:
            writer.close()

    assert recovered_at - returned_at <= INTERVAL_S + SLACK_S, (
        f"after {minutes} min of outage the first good check came "
        f"{recovered_at - returned_at:.1f}s after the backend returned"
    )
    assert "CANARY-during-outage" in (tmp_path / "client.properties").read_text()
    # retries kept coming through the outage (at least one per interval per secret), and
    # never more than one per half interval per secret: no spin, no storm
    assert all(outcome == "error" for _, outcome in attempts[:during])
    assert (
        2 * (minutes * 60 / INTERVAL_S - 1) <= during <= 2 * (minutes * 60 / (INTERVAL_S / 2) + 8)
    )
    text = log_buffer.getvalue()
    assert CANARY_PASSWORD not in text and "CANARY-during-outage" not in text


def test_a_daemon_answers_within_one_poll_after_a_real_outage(
    moto: Moto, proxy: FaultProxy, tmp_path: Path, start_daemon: Any
) -> None:
    """The same bound in real time, through the real poller and the whole daemon.

    10 s of outage at a 1 s interval is 10 intervals: the old backoff scheduled its
    first retry up to 2 s out and had grown to a ceiling of 16 s by the fourth failure,
    so this fails without the cap (the compressed test
    above covers 1, 10 and 60 minutes)."""
    moto.seed_use_case()
    interval_s, outage_s = 1.0, 10.0
    cfg = write_yaml(
        tmp_path / "sync.yaml",
        example_config(
            tmp_path / "out", proxy.url, poll={"interval": f"{interval_s}s", "jitter": 0.1}
        ),
    )
    daemon: Daemon = start_daemon(cfg)
    kafka_file = tmp_path / "out" / "client.properties"
    wait_until(kafka_file.exists, 30, "the first sync")

    proxy.down()
    moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-after-outage"))
    down_at = time.monotonic()
    # the outage itself: real time during which every check fails
    wait_until(
        lambda: (
            time.monotonic() - down_at >= outage_s
            and sum(e.get("event") == "secret_check_failed" for e in daemon.events()) >= 4
        ),
        120,
        "an outage with failed checks",
    )
    proxy.up()
    up_at = time.monotonic()
    # no retry was ever scheduled further out than one interval (the old backoff had
    # reached a ceiling of 16 s after four failures)
    retries = [e["retry_in_s"] for e in daemon.events() if e.get("event") == "secret_check_failed"]
    assert retries and max(retries) <= interval_s, retries
    for secret_id in (KAFKA_ID, SR_ID):
        answered = functools.partial(proxy.first_answer_after, up_at, secret_id)
        first = wait_until(answered, 400, "a check after the outage")
        assert first - up_at <= interval_s + SLACK_S, f"{secret_id}: {first - up_at:.1f}s after"
    wait_until(lambda: b"CANARY-after-outage" in kafka_file.read_bytes(), 30, "the rotation")
    assert daemon.stop() < 10 and daemon.proc.returncode == 0
    assert "CANARY" not in daemon.log_path.read_text()
