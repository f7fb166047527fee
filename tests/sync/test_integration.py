"""The syncer and poller with the real Secrets Manager adapter, against moto over HTTP.

Requests are counted by a proxy in front of moto, so the API budget asserted
here is what really went over the wire.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from secretsync.config.model import Config, parse_config
from secretsync.metrics import Metrics
from secretsync.output.writer import OutputWriter
from secretsync.source.secretsmanager import SecretsManagerSource
from secretsync.sync.poller import Poller
from secretsync.sync.syncer import Syncer
from tests.support.configs import example_config
from tests.support.faultproxy import FaultProxy
from tests.support.motoserver import Moto
from tests.support.seeds import KAFKA_ID, REGION, SR_ID, kafka_secret
from tests.support.wait import async_wait_until


@pytest.fixture
async def source(proxy: FaultProxy) -> AsyncIterator[SecretsManagerSource]:
    async with SecretsManagerSource(
        region=REGION, endpoint_url=proxy.url, max_attempts=1, connect_timeout_s=1
    ) as src:
        yield src


@pytest.fixture
def writers() -> Any:
    made: list[OutputWriter] = []
    yield made
    for writer in made:
        writer.close()


def syncer_for(config: Config, source: SecretsManagerSource, writers: list[OutputWriter]) -> Syncer:
    metrics = Metrics()
    writer = OutputWriter(metrics)
    writers.append(writer)
    syncer = Syncer(config, source, writer, metrics=metrics)
    writer.manage([o.path for o in config.outputs])
    return syncer


def outputs_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


async def test_steady_state_and_rotation_cost_exactly_what_the_contract_says(
    moto: Moto, proxy: FaultProxy, source: SecretsManagerSource, tmp_path: Path, writers: Any
) -> None:
    moto.seed_use_case()
    syncer = syncer_for(parse_config(example_config(tmp_path, proxy.url)), source, writers)
    first = await syncer.cycle()
    assert len(first.files_written) == 3
    assert (proxy.count("DescribeSecret"), proxy.count("GetSecretValue")) == (2, 2)
    proxy.reset_counts()

    for _ in range(3):
        assert (await syncer.cycle()).files_written == []
    assert (proxy.count("DescribeSecret"), proxy.count("GetSecretValue")) == (6, 0)

    proxy.reset_counts()
    new_version = moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-next"))
    report = await syncer.cycle()
    assert report.secrets_changed == [KAFKA_ID]
    # pinned to the version DescribeSecret saw, never a bare GetSecretValue
    assert proxy.fetched_versions == [("GetSecretValue", new_version)]
    assert "CANARY-next" in (tmp_path / "client.properties").read_text()


async def test_the_poller_recovers_when_the_service_comes_back(
    moto: Moto, proxy: FaultProxy, source: SecretsManagerSource, tmp_path: Path, writers: Any
) -> None:
    moto.seed_use_case()
    proxy.down()
    config = parse_config(
        example_config(tmp_path, proxy.url, poll={"interval": "300ms", "jitter": 0})
    )
    syncer = syncer_for(config, source, writers)
    poller = Poller(syncer)
    task = asyncio.create_task(poller.run())
    try:
        await async_wait_until(lambda: poller.cycles >= 2, 10, "cycles while down")
        assert outputs_in(tmp_path) == []
        assert sorted(syncer.not_ready()) == sorted(str(p) for p in syncer.outputs)

        proxy.up()
        await async_wait_until(lambda: not syncer.not_ready(), 20, "first sync after outage")
        assert len(outputs_in(tmp_path)) == 3

        # down again during the run: files stay, a rotation lands once it is back
        proxy.down()
        good = (tmp_path / "client.properties").read_bytes()
        moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-after-outage"))
        cycles = poller.cycles
        await async_wait_until(lambda: poller.cycles >= cycles + 2, 20, "cycles in outage")
        assert (tmp_path / "client.properties").read_bytes() == good
        proxy.up()
        await async_wait_until(
            lambda: "CANARY-after-outage" in (tmp_path / "client.properties").read_text(), 30
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_one_stalled_secret_never_holds_back_the_others(
    moto: Moto, proxy: FaultProxy, tmp_path: Path, writers: Any
) -> None:
    moto.seed_use_case()
    config = parse_config(example_config(tmp_path, proxy.url, poll={"interval": "1s", "jitter": 0}))
    async with SecretsManagerSource(
        region=REGION, endpoint_url=proxy.url, max_attempts=1, call_timeout_s=1
    ) as source:
        syncer = syncer_for(config, source, writers)
        await syncer.cycle()
        # from now on every answer about the Schema Registry secret trickles in, a byte
        # a second (no read timeout ever fires); the Kafka secret's answers are normal
        proxy.fault, proxy.fault_only, proxy.trickle_every_s = "trickle", frozenset({SR_ID}), 1.0
        poller = Poller(syncer)
        task = asyncio.create_task(poller.run())
        try:
            await async_wait_until(lambda: poller.cycles >= 1, 30, "a cycle with a stall")
            moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-beside-a-stall"))
            await async_wait_until(
                lambda: "CANARY-beside-a-stall" in (tmp_path / "client.properties").read_text(),
                30,
                "the other secret's rotation",
            )
            cycles = poller.cycles
            await async_wait_until(lambda: poller.cycles >= cycles + 3, 30, "cycles going on")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    error = syncer.secrets[SR_ID].error
    assert error is not None and error.code == "CallTimeout"
    assert syncer.secrets[KAFKA_ID].checked_ok
