"""agent.py: the poll → render → write loop, in-process, against moto over real HTTP.

Requests are counted by a proxy in front of moto, so the API budget asserted
here is what really went over the wire.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from secretsync import logs
from secretsync.agent import Agent
from secretsync.config import Config, parse_config
from secretsync.metrics import Metrics
from secretsync.source import SecretsSource
from tests.conftest import (
    CANARY_PASSWORD,
    CANARY_SR_SECRET,
    KAFKA_ID,
    REGION,
    SR_ID,
    Moto,
    example_config,
    kafka_secret,
    sr_secret,
)
from tests.support.faultproxy import FaultProxy
from tests.support.wait import async_wait_until


@pytest.fixture
def log_buffer() -> io.StringIO:
    buffer = io.StringIO()
    logs.configure("debug", "json", stream=buffer)
    return buffer


@pytest.fixture
async def source(proxy: FaultProxy) -> AsyncIterator[SecretsSource]:
    async with SecretsSource(
        region=REGION, endpoint_url=proxy.url, max_attempts=1, connect_timeout_s=1
    ) as src:
        yield src


class UpperBound(random.Random):
    """Full jitter at its maximum, so backoff delays are predictable."""

    def uniform(self, a: float, b: float) -> float:
        return b


def config(out: Path, proxy: FaultProxy, **overrides: object) -> Config:
    return parse_config(example_config(out, proxy.url, **overrides))


def stat_of(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_steady_state_costs_one_describe_per_secret_and_no_fetch(
    moto: Moto, proxy: FaultProxy, source: SecretsSource, tmp_path: Path
) -> None:
    moto.seed_use_case()
    agent = Agent(config(tmp_path, proxy), source)
    first = await agent.cycle()
    assert len(first.files_written) == 3
    assert (proxy.count("DescribeSecret"), proxy.count("GetSecretValue")) == (2, 2)
    files = sorted(tmp_path.iterdir())
    before = [stat_of(p) for p in files]
    proxy.reset_counts()

    for _ in range(3):
        report = await agent.cycle()
        assert report.files_written == [] and report.errors == 0

    assert proxy.count("DescribeSecret") == 3 * 2  # 2 unique secrets shared by 3 outputs
    assert proxy.count("GetSecretValue") == 0
    assert [stat_of(p) for p in files] == before
    assert agent.all_current()


async def test_a_rotation_costs_one_fetch_pinned_to_the_new_version(
    moto: Moto, proxy: FaultProxy, source: SecretsSource, tmp_path: Path
) -> None:
    moto.seed_use_case()
    agent = Agent(config(tmp_path, proxy), source)
    await agent.cycle()
    sr_before = stat_of(tmp_path / "schema-registry.properties")
    proxy.reset_counts()

    new_version = moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-next"))
    report = await agent.cycle()

    assert report.secrets_changed == [KAFKA_ID]
    assert sorted(w.path.name for w in report.files_written) == [
        "client.properties",
        "combined.properties",
    ]
    assert proxy.fetched_versions == [("GetSecretValue", new_version)]
    assert proxy.count("DescribeSecret") == 2
    assert "CANARY-next" in (tmp_path / "combined.properties").read_text()
    assert stat_of(tmp_path / "schema-registry.properties") == sr_before


@pytest.mark.parametrize(
    ("bad_value", "reason"),
    [
        ("CANARY-not-json", "render"),
        ({"bootstrap.servers": "b:9092"}, "render"),  # sasl.jaas.config missing
    ],
    ids=["not-json", "missing-key"],
)
async def test_a_malformed_secret_keeps_the_last_good_file(
    moto: Moto,
    proxy: FaultProxy,
    source: SecretsSource,
    tmp_path: Path,
    log_buffer: io.StringIO,
    bad_value: object,
    reason: str,
) -> None:
    moto.seed_use_case()
    metrics = Metrics()
    agent = Agent(config(tmp_path, proxy), source, metrics=metrics)
    await agent.cycle()
    good = (tmp_path / "client.properties").read_bytes()

    moto.rotate(KAFKA_ID, bad_value)  # type: ignore[arg-type]
    report = await agent.cycle()

    assert report.errors == 2  # client.properties and combined.properties
    assert (tmp_path / "client.properties").read_bytes() == good
    path = str(tmp_path / "client.properties")
    assert sample(metrics, "secretsync_sync_errors_total", path=path, reason=reason) == 1
    assert not agent.all_current()

    # the other outputs carry on: a Schema Registry rotation still lands
    moto.rotate(SR_ID, sr_secret(secret="CANARY-sr-2"))
    await agent.cycle()
    assert "CANARY-sr-2" in (tmp_path / "schema-registry.properties").read_text()
    text = log_buffer.getvalue()
    assert "output_failed" in text
    for canary in ("CANARY-not-json", CANARY_PASSWORD, CANARY_SR_SECRET, "CANARY-sr-2"):
        assert canary not in text

    # and a fixed secret recovers the file
    moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-fixed"))
    await agent.cycle()
    assert "CANARY-fixed" in (tmp_path / "client.properties").read_text()
    assert agent.all_current()


async def test_a_deleted_secret_keeps_the_file_and_is_retried_each_cycle(
    moto: Moto, proxy: FaultProxy, source: SecretsSource, tmp_path: Path
) -> None:
    moto.seed_use_case()
    metrics = Metrics()
    agent = Agent(config(tmp_path, proxy), source, metrics=metrics)
    await agent.cycle()
    good = (tmp_path / "client.properties").read_bytes()
    moto.client.delete_secret(SecretId=KAFKA_ID, RecoveryWindowInDays=7)
    proxy.reset_counts()

    await agent.cycle()
    await agent.cycle()

    assert (tmp_path / "client.properties").read_bytes() == good
    assert proxy.count("DescribeSecret") == 4  # permanent: retried at the normal cadence
    assert agent.secrets[KAFKA_ID].error is not None
    assert agent.secrets[KAFKA_ID].error.code == "SecretDeleted"  # type: ignore[union-attr]
    path = str(tmp_path / "client.properties")
    assert sample(metrics, "secretsync_sync_errors_total", path=path, reason="fetch") == 2


async def test_a_secret_that_does_not_exist_fails_only_its_outputs(
    moto: Moto, proxy: FaultProxy, source: SecretsSource, tmp_path: Path
) -> None:
    moto.create(SR_ID, sr_secret())  # the Kafka secret is never created
    agent = Agent(config(tmp_path, proxy), source)

    report = await agent.cycle()

    assert [w.path.name for w in report.files_written] == ["schema-registry.properties"]
    assert report.errors == 2
    assert not (tmp_path / "client.properties").exists()
    assert sorted(agent.not_ready()) == sorted(
        str(tmp_path / n) for n in ("client.properties", "combined.properties")
    )


async def test_transient_errors_back_off_per_secret_and_reset_on_success(
    moto: Moto, proxy: FaultProxy, source: SecretsSource, tmp_path: Path
) -> None:
    moto.seed_use_case()
    agent = Agent(config(tmp_path, proxy), source, rng=UpperBound())
    proxy.fault = "throttle"
    started = time.monotonic()
    await agent.cycle()
    states = agent.secrets
    # first failure: full jitter over [0, 2s]; UpperBound picks 2s
    assert all(st.failures == 1 and st.retry_at >= started + 2 for st in states.values())
    proxy.reset_counts()

    await agent.cycle()  # a regular cycle skips secrets still in backoff
    assert proxy.count("DescribeSecret") == 0

    proxy.fault = "none"
    await async_wait_until(
        lambda: all(st.retry_at <= time.monotonic() for st in agent.secrets.values()), 10
    )
    await agent.cycle(regular=False)
    assert all(st.failures == 0 and st.retry_at == 0 for st in agent.secrets.values())
    assert len(list(tmp_path.iterdir())) == 3


async def test_backoff_is_capped_at_five_minutes(
    moto: Moto, proxy: FaultProxy, source: SecretsSource, tmp_path: Path
) -> None:
    moto.seed_use_case()
    agent = Agent(config(tmp_path, proxy), source, rng=random.Random(1))
    proxy.fault = "error500"
    for st in agent.secrets.values():
        st.failures = 30
    started = time.monotonic()
    await agent.cycle()
    for st in agent.secrets.values():
        assert st.failures == 31
        assert started < st.retry_at <= time.monotonic() + 300


async def test_run_recovers_when_the_service_comes_back(
    moto: Moto, proxy: FaultProxy, source: SecretsSource, tmp_path: Path
) -> None:
    moto.seed_use_case()
    proxy.down()
    agent = Agent(config(tmp_path, proxy, poll={"interval": "300ms", "jitter": 0}), source)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await async_wait_until(lambda: agent.cycles >= 2, 10, "cycles while down")
        assert not any(tmp_path.iterdir())
        assert sorted(agent.not_ready()) == sorted(str(p) for p in agent.outputs)

        proxy.up()
        await async_wait_until(lambda: not agent.not_ready(), 20, "first sync after outage")
        assert len(list(tmp_path.iterdir())) == 3

        # down again during the run: files stay, a rotation lands once it is back
        proxy.down()
        good = (tmp_path / "client.properties").read_bytes()
        moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-after-outage"))
        cycles = agent.cycles
        await async_wait_until(lambda: agent.cycles >= cycles + 2, 20, "cycles in outage")
        assert (tmp_path / "client.properties").read_bytes() == good
        proxy.up()
        await async_wait_until(
            lambda: "CANARY-after-outage" in (tmp_path / "client.properties").read_text(), 20
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_stop_is_prompt_even_when_aws_hangs(
    moto: Moto, proxy: FaultProxy, tmp_path: Path
) -> None:
    moto.seed_use_case()
    proxy.fault = "hang"
    async with SecretsSource(region=REGION, endpoint_url=proxy.url, read_timeout_s=60) as src:
        agent = Agent(config(tmp_path, proxy), src)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await async_wait_until(lambda: proxy.count("DescribeSecret") >= 1, 10)
        started = time.monotonic()
        stop.set()
        await asyncio.wait_for(task, 10)
        assert time.monotonic() - started < 5


async def test_summary_line_per_cycle(
    moto: Moto, proxy: FaultProxy, source: SecretsSource, tmp_path: Path, log_buffer: io.StringIO
) -> None:
    moto.seed_use_case()
    agent = Agent(config(tmp_path, proxy), source)
    await agent.cycle()
    await agent.cycle()
    lines = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    summaries = [e for e in lines if e["event"] == "poll_cycle"]
    assert [
        (s["secrets_checked"], s["secrets_changed"], s["files_written"]) for s in summaries
    ] == [
        (2, 2, 3),
        (2, 0, 0),
    ]
    assert all({"errors", "duration_s", "timestamp", "level"} <= s.keys() for s in summaries)
    assert repr(agent) == "Agent(outputs=3, secrets=2, cycles=2, files_written=3)"
    text = log_buffer.getvalue()
    assert CANARY_PASSWORD not in text and CANARY_SR_SECRET not in text
