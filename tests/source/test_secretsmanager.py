"""source.py: the Secrets Manager adapter against a real moto server over HTTP."""

from __future__ import annotations

import asyncio

import pytest

from secretsync.source.protocol import SourceError
from secretsync.source.secretsmanager import (
    ENDPOINT_SERVICES,
    SecretsManagerSource,
    lean_session,
)
from tests.support.faultproxy import FaultProxy
from tests.support.motoserver import Moto
from tests.support.seeds import REGION
from tests.support.wait import async_wait_until


async def test_current_version_and_pinned_fetch(moto: Moto) -> None:
    v1 = moto.create("app/one", {"k": "1"})
    v2 = moto.rotate("app/one", {"k": "2"})
    async with SecretsManagerSource(region=REGION, endpoint_url=moto.url) as source:
        assert await source.current_version("app/one") == v2
        old = await source.fetch("app/one", v1)
        new = await source.fetch("app/one", v2)
    assert (old.version_id, old.text) == (v1, '{"k": "1"}')
    assert (new.version_id, new.text) == (v2, '{"k": "2"}')
    assert (source.describe_calls, source.fetch_calls) == (1, 2)


async def test_a_read_carries_the_creation_date_of_the_version_fetched(moto: Moto) -> None:
    v1 = moto.create("app/dated", {"k": "1"})
    async with SecretsManagerSource(region=REGION, endpoint_url=moto.url) as source:
        first = await source.read("app/dated", None)
        v2 = moto.rotate("app/dated", {"k": "2"})
        second = await source.read("app/dated", v1)
        unchanged = await source.read("app/dated", v2)
    assert (first.version_id, second.version_id) == (v1, v2)
    # CreatedDate, as epoch seconds: what tells a replica's older version from a newer one
    assert first.created is not None and second.created is not None
    assert first.created <= second.created
    assert unchanged.value is None and unchanged.created is None  # nothing fetched


async def test_not_found_is_permanent(moto: Moto) -> None:
    async with SecretsManagerSource(region=REGION, endpoint_url=moto.url) as source:
        with pytest.raises(SourceError) as info:
            await source.current_version("nope")
    assert info.value.code == "ResourceNotFoundException"
    assert not info.value.transient


async def test_deleted_secret_is_permanent(moto: Moto) -> None:
    moto.create("gone", {"k": "CANARY-deleted"})
    moto.client.delete_secret(SecretId="gone", RecoveryWindowInDays=7)
    async with SecretsManagerSource(region=REGION, endpoint_url=moto.url) as source:
        with pytest.raises(SourceError) as info:
            await source.current_version("gone")
    assert info.value.code == "SecretDeleted" and not info.value.transient
    assert "CANARY" not in str(info.value)


async def test_connection_refused_is_transient(moto: Moto, proxy: FaultProxy) -> None:
    proxy.down()
    async with SecretsManagerSource(
        region=REGION, endpoint_url=proxy.url, max_attempts=1, connect_timeout_s=1
    ) as source:
        with pytest.raises(SourceError) as info:
            await source.current_version("any")
    assert info.value.code == "ConnectionError" and info.value.transient


async def test_throttling_is_transient_and_every_attempt_is_observed(
    moto: Moto, proxy: FaultProxy
) -> None:
    moto.create("t", {"k": "1"})
    proxy.fault = "throttle"
    seen: list[tuple[str, str]] = []
    async with SecretsManagerSource(
        region=REGION, endpoint_url=proxy.url, max_attempts=3, on_request=lambda *a: seen.append(a)
    ) as source:
        with pytest.raises(SourceError) as info:
            await source.current_version("t")
    assert info.value.code == "ThrottlingException" and info.value.transient
    assert seen == [("DescribeSecret", "throttled")] * 3
    assert proxy.count("DescribeSecret") == 3


async def test_server_errors_are_transient(moto: Moto, proxy: FaultProxy) -> None:
    proxy.fault = "error500"
    async with SecretsManagerSource(
        region=REGION, endpoint_url=proxy.url, max_attempts=1
    ) as source:
        with pytest.raises(SourceError) as info:
            await source.current_version("t")
    assert info.value.transient


async def test_a_trickling_endpoint_is_cut_off_at_the_call_deadline_as_unavailable(
    moto: Moto, proxy: FaultProxy
) -> None:
    moto.create("t", {"k": "1"})
    # headers at once, then a byte a second: every read arrives well within the read
    # timeout, so only a deadline on the whole call ends it
    proxy.fault, proxy.trickle_every_s = "trickle", 1.0
    seen: list[tuple[str, str]] = []
    async with SecretsManagerSource(
        region=REGION,
        endpoint_url=proxy.url,
        call_timeout_s=2,
        on_request=lambda *a: seen.append(a),
    ) as source:
        with pytest.raises(SourceError) as info:
            # the outer bound only turns a call that never ends into a failure of this test
            await asyncio.wait_for(source.current_version("t"), 60)
        assert info.value.code == "CallTimeout"
        assert info.value.transient and info.value.unavailable  # a replica region may answer
        assert "2s" in str(info.value)
        assert seen == [("DescribeSecret", "error")]
        # the connection it used is not reused half-read: the next call gets a real answer
        proxy.fault = "none"
        assert await source.current_version("t")


async def test_a_call_queued_behind_stalled_ones_gives_up_at_its_own_deadline(
    moto: Moto, proxy: FaultProxy
) -> None:
    for name in ("q1", "q2", "q3"):
        moto.create(name, {"k": "1"})
    proxy.fault, proxy.trickle_every_s = "trickle", 1.0
    seen: list[tuple[str, str]] = []
    async with SecretsManagerSource(
        region=REGION,
        endpoint_url=proxy.url,
        max_concurrency=1,
        call_timeout_s=60,
        on_request=lambda *a: seen.append(a),
    ) as source:
        # the one connection slot is taken by a call that stalls (and may for a minute)
        stalled = asyncio.create_task(source.current_version("q1"))
        try:
            await async_wait_until(lambda: proxy.count("DescribeSecret") == 1, 30, "q1 sent")
            source.call_timeout_s = 1  # the calls queued behind it have a short deadline
            results = await asyncio.wait_for(
                asyncio.gather(
                    source.current_version("q2"),
                    source.current_version("q3"),
                    return_exceptions=True,
                ),
                20,  # without the queue in the deadline they would wait for q1 first
            )
        finally:
            stalled.cancel()
            await asyncio.gather(stalled, return_exceptions=True)
    assert all(isinstance(r, SourceError) and r.code == "CallTimeout" for r in results)
    assert all("no free connection" in str(r) for r in results)
    assert seen == [] and proxy.count("DescribeSecret") == 1  # nothing else was sent


async def test_missing_region_is_reported(monkeypatch: pytest.MonkeyPatch, moto: Moto) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    source = SecretsManagerSource(endpoint_url=None)
    with pytest.raises(SourceError, match="NoRegion"):
        await source.start()


def test_repr_has_counters() -> None:
    assert "describe_calls=0" in repr(SecretsManagerSource(region=REGION))


# -- the lean client build -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [
        ("us-east-1", "https://secretsmanager.us-east-1.amazonaws.com"),
        ("cn-north-1", "https://secretsmanager.cn-north-1.amazonaws.com.cn"),
        ("us-gov-west-1", "https://secretsmanager.us-gov-west-1.amazonaws.com"),
        ("eu-south-2", "https://secretsmanager.eu-south-2.amazonaws.com"),
    ],
)
async def test_the_trimmed_endpoint_table_still_resolves_every_partition(
    region: str, endpoint: str
) -> None:
    # no call is made: the client only works out where it would send one
    async with SecretsManagerSource(region=region) as source:
        assert source._client.meta.endpoint_url == endpoint
        assert source._client.meta.region_name == region


def test_the_lean_session_knows_the_credential_chain_services_and_no_others() -> None:
    resolver = lean_session()._get_internal_component("endpoint_resolver")
    assert set(resolver.get_available_endpoints("sts")) >= {"us-east-1", "eu-west-1"}
    assert resolver.get_available_endpoints("secretsmanager")
    assert resolver.get_available_endpoints("ec2") == []
    assert {"secretsmanager", "sts"} <= ENDPOINT_SERVICES
