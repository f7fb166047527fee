"""Metrics, /healthz and /readyz: real polls against moto, real scrapes over HTTP.

Each test builds its own CollectorRegistry and drives a Syncer with a real
SecretsManagerSource, so every value asserted here was produced by real requests.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from secretsync import __version__
from secretsync.config.model import Config, parse_config
from secretsync.metrics import Metrics
from secretsync.output.writer import OutputWriter
from secretsync.serve.client import DEFAULT_HEALTH_URL, health_url
from secretsync.serve.server import MonitoringServer, MonitoringServerError, Probes
from secretsync.source.secretsmanager import SecretsManagerSource
from secretsync.sync.poller import Poller
from secretsync.sync.syncer import Syncer
from tests.support.configs import example_config, write_yaml
from tests.support.contract import CONTRACT, STANDARD, is_standard
from tests.support.daemon import run_cli
from tests.support.faultproxy import FaultProxy
from tests.support.harness import config_data, seeded_source
from tests.support.motoserver import Moto, free_port
from tests.support.promtool import run_promtool
from tests.support.seeds import (
    CANARY_PASSWORD,
    CANARY_SR_SECRET,
    KAFKA_ID,
    REGION,
    SR_ID,
    kafka_secret,
)
from tests.support.wait import async_wait_until, wait_until

CANARIES = (CANARY_PASSWORD, CANARY_SR_SECRET, "CANARY-rotated-5e1")


def make_config(out: Path, endpoint: str, **overrides: Any) -> Config:
    return parse_config(example_config(out, endpoint, **overrides))


def paths_of(config: Config) -> list[str]:
    return sorted(str(o.path) for o in config.outputs)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    assert found is not None, f"no sample {name}{labels}"
    return found


@asynccontextmanager
async def polling(
    config: Config, endpoint: str, metrics: Metrics, *, max_attempts: int = 3
) -> AsyncIterator[Syncer]:
    """A Syncer over a started SecretsManagerSource that counts requests into ``metrics``."""
    source = SecretsManagerSource(
        region=REGION,
        endpoint_url=endpoint,
        max_attempts=max_attempts,
        on_request=metrics.request_observer(REGION),
    )
    writer = OutputWriter(metrics)
    async with source:
        syncer = Syncer(config, source, writer, metrics=metrics)
        writer.manage([o.path for o in config.outputs])
        try:
            yield syncer
        finally:
            writer.close()


def probes_of(syncer: Syncer) -> Probes:
    return Probes(
        last_poll_started=lambda: syncer.last_cycle_started,
        poll_interval_s=lambda: syncer.config.poll.interval_s,
        not_ready=syncer.not_ready,
        stale=syncer.stale,
    )


@asynccontextmanager
async def serving(
    syncer: Syncer, *, min_window_s: float = 60.0, run: bool = True
) -> AsyncIterator[MonitoringServer]:
    """A MonitoringServer on an ephemeral loopback port; with ``run`` the poller runs too."""
    server = MonitoringServer(
        syncer.metrics, probes_of(syncer), host="127.0.0.1", port=0, min_window_s=min_window_s
    )
    await server.start()
    task = asyncio.create_task(Poller(syncer).run()) if run else None
    try:
        yield server
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await server.stop()


async def get(url: str, accept: str | None = None) -> tuple[int, str, str]:
    headers = {"Accept": accept} if accept else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=5)) as resp,
    ):
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


# -- values after real polls ----------------------------------------------------------


async def test_polls_count_requests_changes_writes_and_freshness(
    moto: Moto, tmp_path: Path
) -> None:
    moto.seed_use_case()
    config = make_config(tmp_path / "out", moto.url)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    client, schema, combined = (
        str(tmp_path / "out" / n)
        for n in (
            "client.properties",
            "schema-registry.properties",
            "combined.properties",
        )
    )
    async with polling(config, moto.url, metrics) as agent:
        before = time.time()
        await agent.cycle()

        ok = {"outcome": "ok", "region": REGION}
        assert (
            value(registry, "secretsync_aws_requests_total", operation="DescribeSecret", **ok) == 2
        )
        assert (
            value(registry, "secretsync_aws_requests_total", operation="GetSecretValue", **ok) == 2
        )
        assert value(registry, "secretsync_secret_changes_total", secret=KAFKA_ID) == 1
        assert value(registry, "secretsync_secret_changes_total", secret=SR_ID) == 1
        for path in (client, schema, combined):
            assert value(registry, "secretsync_file_writes_total", path=path) == 1
            stamp = value(registry, "secretsync_last_success_timestamp_seconds", path=path)
            assert before <= stamp <= time.time()
            for reason in ("fetch", "throttled", "render", "write"):
                assert (
                    value(registry, "secretsync_sync_errors_total", path=path, reason=reason) == 0
                )
        assert value(registry, "secretsync_ready") == 1
        assert value(registry, "secretsync_poll_duration_seconds_count") == 1
        assert value(registry, "secretsync_build_info", version=__version__) == 1

        # nothing changed: one DescribeSecret per secret, no fetch, no write
        await agent.cycle()
        describe = {"operation": "DescribeSecret", **ok}
        assert value(registry, "secretsync_aws_requests_total", **describe) == 4
        assert (
            value(registry, "secretsync_aws_requests_total", operation="GetSecretValue", **ok) == 2
        )
        assert value(registry, "secretsync_file_writes_total", path=client) == 1
        assert value(registry, "secretsync_poll_duration_seconds_count") == 2

        moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-rotated-5e1"))
        await agent.cycle()
        assert value(registry, "secretsync_secret_changes_total", secret=KAFKA_ID) == 2
        assert value(registry, "secretsync_secret_changes_total", secret=SR_ID) == 1
        assert value(registry, "secretsync_file_writes_total", path=client) == 2
        assert value(registry, "secretsync_file_writes_total", path=combined) == 2
        assert value(registry, "secretsync_file_writes_total", path=schema) == 1


async def test_sync_errors_are_counted_by_path_and_reason(moto: Moto, tmp_path: Path) -> None:
    moto.create(KAFKA_ID, "not json at all")  # render error for the Kafka outputs
    # the Schema Registry secret does not exist: a (permanent) fetch error
    config = make_config(tmp_path / "out", moto.url)
    registry = CollectorRegistry()
    async with polling(config, moto.url, Metrics(registry)) as agent:
        await agent.cycle()

    client = str(tmp_path / "out" / "client.properties")
    schema = str(tmp_path / "out" / "schema-registry.properties")
    assert value(registry, "secretsync_sync_errors_total", path=client, reason="render") == 1
    assert value(registry, "secretsync_sync_errors_total", path=schema, reason="fetch") == 1
    describe_error = {"operation": "DescribeSecret", "outcome": "error", "region": REGION}
    assert value(registry, "secretsync_aws_requests_total", **describe_error) == 1
    assert value(registry, "secretsync_ready") == 0
    assert (
        registry.get_sample_value("secretsync_last_success_timestamp_seconds", {"path": client})
        is None
    )


async def test_every_throttled_attempt_is_counted(
    moto: Moto, proxy: FaultProxy, tmp_path: Path
) -> None:
    moto.seed_use_case()
    proxy.fault = "throttle"
    config = make_config(tmp_path / "out", proxy.url)
    registry = CollectorRegistry()
    async with polling(config, proxy.url, Metrics(registry), max_attempts=2) as agent:
        await agent.cycle()
    assert isinstance(agent.source, SecretsManagerSource)
    assert agent.source.describe_calls == 2  # the agent asked twice…

    throttled = value(
        registry,
        "secretsync_aws_requests_total",
        operation="DescribeSecret",
        outcome="throttled",
        region=REGION,
    )
    # …botocore retried each call, and every attempt the proxy answered was counted
    assert proxy.count("DescribeSecret") > 2
    assert throttled == proxy.count("DescribeSecret")
    assert (
        value(
            registry,
            "secretsync_aws_requests_total",
            operation="DescribeSecret",
            outcome="ok",
            region=REGION,
        )
        == 0
    )
    client = str(tmp_path / "out" / "client.properties")
    assert value(registry, "secretsync_sync_errors_total", path=client, reason="throttled") == 1


# -- the HTTP endpoints ------------------------------------------------------------------


async def test_scrape_has_the_whole_contract_and_promtool_finds_it_clean(
    moto: Moto, tmp_path: Path
) -> None:
    moto.seed_use_case()
    config = make_config(tmp_path / "out", moto.url)
    metrics = Metrics(CollectorRegistry())
    async with polling(config, moto.url, metrics) as agent, serving(agent, run=False) as server:
        await agent.cycle()
        status, content_type, text = await get(server.url + "/metrics")
        om_status, om_type, om_text = await get(
            server.url + "/metrics", accept="application/openmetrics-text; version=1.0.0"
        )

    assert status == 200
    assert content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # every contract metric, the standard process_/python_ collectors, and nothing else
    assert {name for name in families if not is_standard(name)} == set(CONTRACT)
    for name, kind in STANDARD.items():
        assert families[name].type == kind, name
    assert families["process_resident_memory_bytes"].samples[0].value > 0
    assert families["process_open_fds"].samples[0].value > 0
    assert 0 < families["process_start_time_seconds"].samples[0].value <= time.time()
    assert "_created" not in text  # prometheus_client's extra gauges are dropped
    for name, (kind, labels) in CONTRACT.items():
        family = families[name]
        assert family.type == kind, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)
    client = str(tmp_path / "out" / "client.properties")
    writes = families["secretsync_file_writes"].samples
    assert any(s.labels == {"path": client} and s.value == 1 for s in writes)

    assert om_status == 200
    assert om_type.startswith("application/openmetrics-text")
    assert om_text.endswith("# EOF\n")
    families = openmetrics_families(om_text)  # type: ignore[no-untyped-call]
    assert {f.name for f in families} >= set(CONTRACT)

    output = run_promtool("check", "metrics", stdin=text.encode())
    assert output.strip() == "", f"promtool lint findings:\n{output}"


async def test_readyz_is_503_until_the_first_sync_then_stays_200_through_an_outage(
    moto: Moto, proxy: FaultProxy, tmp_path: Path
) -> None:
    moto.seed_use_case()
    proxy.down()
    config = make_config(
        tmp_path / "out",
        proxy.url,
        poll={"interval": "500ms", "jitter": 0},
        metrics={"listen": None, "stale_after": "1s"},
    )
    registry = CollectorRegistry()
    # min_window_s=0: /healthz uses the bare 3-interval rule (1.5 s) in this test;
    # max_attempts=1 (no botocore retries) keeps each failing cycle well inside it
    async with (
        polling(config, proxy.url, Metrics(registry), max_attempts=1) as agent,
        serving(agent, min_window_s=0) as server,
    ):
        # never synced since start: the app cannot run yet
        await async_wait_until(lambda: agent.cycles >= 3, 20, "three failed cycles")
        status, _, body = await get(server.url + "/readyz")
        assert status == 503
        assert json.loads(body) == {"ready": False, "not_ready": paths_of(config)}
        assert value(registry, "secretsync_ready") == 0
        status, _, body = await get(server.url + "/fresh")
        assert (status, json.loads(body)) == (503, {"fresh": False, "stale": paths_of(config)})

        proxy.up()
        body = await wait_for_status(server.url + "/readyz", 200, 30)
        assert json.loads(body) == {"ready": True}
        assert value(registry, "secretsync_ready") == 1
        await wait_for_status(server.url + "/fresh", 200, 30)
        assert value(registry, "secretsync_fresh") == 1

        # an outage longer than stale_after: the files on disk are the last good ones,
        # so the app can run; staleness shows on /fresh and in the metrics instead
        proxy.down()
        cycles = agent.cycles
        await wait_for_status(server.url + "/fresh", 503, 30)
        until_cycle = agent.cycles + 3
        deadline = time.monotonic() + 30
        while agent.cycles < until_cycle:
            assert time.monotonic() < deadline, "the agent stopped cycling"
            for path in ("/readyz", "/healthz"):  # an outage is neither unready nor unhealthy
                status, _, body = await get(server.url + path)
                assert status == 200, (path, body)
            await asyncio.sleep(0.05)
        assert agent.cycles > cycles
        assert sorted(agent.stale()) == paths_of(config)
        _, _, text = await get(server.url + "/metrics")
        assert sample_of(text, "secretsync_ready") == 1
        assert sample_of(text, "secretsync_fresh") == 0

        proxy.up()
        body = await wait_for_status(server.url + "/fresh", 200, 30)
        assert json.loads(body) == {"fresh": True}


def sample_of(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and not s.labels:
                return s.value
    raise AssertionError(f"no sample {name} in the scrape")


async def wait_for_status(url: str, status: int, timeout_s: float) -> str:
    """Poll ``url`` until it answers ``status``; return that body (bounded wait)."""

    async def body_if_status() -> str | None:
        got, _, body = await get(url)
        return body if got == status else None

    return await async_wait_until(body_if_status, timeout_s, f"{url} to answer {status}")


@pytest.mark.parametrize("readiness", [None, "synced", "fresh"])
async def test_a_stale_output_fails_fresh_and_fails_readyz_only_with_readiness_fresh(
    moto: Moto, tmp_path: Path, readiness: str | None
) -> None:
    moto.seed_use_case()
    settings: dict[str, Any] = {"listen": None, "stale_after": "1s"}
    if readiness is not None:
        settings["readiness"] = readiness
    config = make_config(tmp_path / "out", moto.url, metrics=settings)
    registry = CollectorRegistry()
    async with (
        polling(config, moto.url, Metrics(registry)) as agent,
        serving(agent, run=False) as server,
    ):
        await agent.cycle()
        assert (await get(server.url + "/readyz"))[0] == 200
        assert (await get(server.url + "/fresh"))[0] == 200
        assert value(registry, "secretsync_ready") == 1
        assert value(registry, "secretsync_fresh") == 1
        # no further polls: after stale_after the outputs are stale, and a scrape
        # brings the gauges down without waiting for a cycle
        # the three outputs were confirmed one after another: wait for all of them
        await async_wait_until(
            lambda: sorted(agent.stale()) == paths_of(config), 10, "every output to go stale"
        )
        await get(server.url + "/metrics")
        assert value(registry, "secretsync_fresh") == 0
        status, _, body = await get(server.url + "/fresh")
        assert (status, json.loads(body)) == (503, {"fresh": False, "stale": paths_of(config)})
        status, _, body = await get(server.url + "/readyz")
        if readiness == "fresh":  # the opt-in: the old meaning, ready only while fresh
            assert status == 503
            assert json.loads(body)["not_ready"] == paths_of(config)
            assert value(registry, "secretsync_ready") == 0
        else:
            assert (status, json.loads(body)) == (200, {"ready": True})
            assert value(registry, "secretsync_ready") == 1


def test_a_daemon_stays_ready_through_an_outage_longer_than_stale_after(
    moto: Moto, proxy: FaultProxy, tmp_path: Path, start_daemon: Any
) -> None:
    moto.seed_use_case()
    port = free_port()
    data = example_config(
        tmp_path / "out",
        proxy.url,
        poll={"interval": "200ms", "jitter": 0},
        metrics={"listen": f"127.0.0.1:{port}", "stale_after": "1s"},
    )
    start_daemon(write_yaml(tmp_path / "sync.yaml", data))
    url = f"http://127.0.0.1:{port}"

    def sync_errors() -> float:
        """secretsync_sync_errors_total, summed over its labels, from a real scrape."""
        with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "secretsync_sync_errors_total"
        )

    def status_of(path: str) -> int | None:
        try:
            with urllib.request.urlopen(url + path, timeout=5) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code
        except OSError:
            return None

    wait_until(lambda: status_of("/readyz") == 200, 30, "the first sync")
    wait_until(lambda: status_of("/fresh") == 200, 30, "fresh")
    proxy.down()
    wait_until(lambda: status_of("/fresh") == 503, 30, "the outputs to go stale")
    # well past stale_after, with polls failing all along (ten more failed syncs after
    # the outputs went stale, each retried within one 200 ms interval): /readyz never
    # leaves 200
    failed_then = sync_errors()
    deadline = time.monotonic() + 30
    while sync_errors() < failed_then + 10:
        assert time.monotonic() < deadline, "the daemon stopped retrying"
        assert status_of("/readyz") == 200
        assert status_of("/healthz") == 200
    assert status_of("/fresh") == 503
    with urllib.request.urlopen(url + "/status", timeout=5) as resp:
        document = json.loads(resp.read())
    assert document["current"] is False
    assert {s["error"] for s in document["secrets"]} == {"ConnectionError"}
    proxy.up()
    wait_until(lambda: status_of("/fresh") == 200, 30, "fresh again after the outage")
    assert status_of("/readyz") == 200


@pytest.mark.slow
async def test_healthz_is_503_when_no_poll_started_within_three_intervals() -> None:
    last_poll: list[float | None] = [None]
    probes = Probes(
        last_poll_started=lambda: last_poll[0],
        poll_interval_s=lambda: 10.0,
        not_ready=lambda: [],
    )
    server = MonitoringServer(Metrics(), probes, host="127.0.0.1", port=0, min_window_s=0)
    await server.start()
    try:
        # before the first poll the window counts from start-up
        status, _, body = await get(server.url + "/healthz")
        assert status == 200
        assert json.loads(body)["polled"] is False

        last_poll[0] = time.monotonic() - 31.0  # 3 × 10 s ago, and a bit
        status, _, body = await get(server.url + "/healthz")
        assert status == 503
        assert json.loads(body)["healthy"] is False

        last_poll[0] = time.monotonic()
        assert (await get(server.url + "/healthz"))[0] == 200
        assert (await get(server.url + "/nothing-here"))[0] == 404
    finally:
        await server.stop()


async def test_a_canary_value_never_reaches_metrics_readyz_or_logs(
    moto: Moto, tmp_path: Path, log_buffer: io.StringIO
) -> None:
    moto.seed_use_case()
    broken = example_config(tmp_path / "out", moto.url)
    # an output that cannot render (a key the secret lacks) keeps /readyz at 503
    broken["outputs"].append(
        {
            "path": str(tmp_path / "out" / "broken.properties"),
            "secrets": [{"id": KAFKA_ID, "keys": ["no.such.key", "sasl.jaas.config"]}],
        }
    )
    config = parse_config(broken)
    bodies: list[str] = []
    async with (
        polling(config, moto.url, Metrics(CollectorRegistry())) as agent,
        serving(agent, run=False) as server,
    ):
        await agent.cycle()
        moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-rotated-5e1"))
        await agent.cycle()
        for path, accept in (
            ("/metrics", None),
            ("/metrics", "application/openmetrics-text; version=1.0.0"),
            ("/readyz", None),
            ("/healthz", None),
        ):
            status, _, body = await get(server.url + path, accept)
            assert status in (200, 503)
            bodies.append(body)

    readyz = json.loads(bodies[2])
    assert readyz["not_ready"] == [str(tmp_path / "out" / "broken.properties")]
    log = log_buffer.getvalue()
    assert "secret_changed" in log and "output_failed" in log  # the logs were captured
    for canary in CANARIES:
        for text in [*bodies, log]:
            assert canary not in text


@pytest.mark.slow
async def test_start_on_a_port_in_use_is_a_clear_error_and_move_rebinds() -> None:
    probes = Probes(lambda: None, lambda: 30.0, lambda: [])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        blocked = MonitoringServer(Metrics(), probes, host="127.0.0.1", port=busy)
        with pytest.raises(MonitoringServerError, match="address already in use"):
            await blocked.start()
        assert not blocked.running

        server = MonitoringServer(Metrics(), probes, host="127.0.0.1", port=0)
        await server.start()
        try:
            first = server.url
            assert (await get(first + "/healthz"))[0] == 200
            new_port = free_port()
            await server.move("127.0.0.1", new_port)
            assert server.port == new_port
            assert (await get(server.url + "/healthz"))[0] == 200
            with pytest.raises(aiohttp.ClientConnectionError):
                await get(first + "/healthz")
            # a taken address keeps the server where it was
            with pytest.raises(MonitoringServerError, match="address already in use"):
                await server.move("127.0.0.1", busy)
            assert server.port == new_port
            assert (await get(server.url + "/healthz"))[0] == 200
            # what a config reload does: null stops it, an address starts it again
            await server.reconfigure(None)
            assert not server.running
            with pytest.raises(aiohttp.ClientConnectionError):
                await get(server.url + "/healthz")
            await server.reconfigure(f"127.0.0.1:{new_port}")
            assert (await get(server.url + "/healthz"))[0] == 200
        finally:
            await server.stop()
        assert not server.running


@pytest.mark.slow
def test_the_metrics_module_and_the_health_client_do_not_import_aiohttp() -> None:
    # `secretsync health` and `check` must stay cheap: no aiohttp behind metrics.py
    code = (
        "import sys, secretsync.metrics as m; "
        "print(sorted(k for k in sys.modules if k.split('.')[0] == 'aiohttp'))"
    )
    cmd = [sys.executable, "-c", code]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_health_url_comes_from_metrics_listen() -> None:
    assert health_url("0.0.0.0:9464") == "http://127.0.0.1:9464/healthz"
    assert health_url(":9000") == "http://127.0.0.1:9000/healthz"
    assert health_url("[::]:9464") == "http://[::1]:9464/healthz"
    assert health_url("[::1]:9464") == "http://[::1]:9464/healthz"
    assert health_url("10.1.2.3:8000") == "http://10.1.2.3:8000/healthz"
    assert health_url(None) == DEFAULT_HEALTH_URL == "http://127.0.0.1:9464/healthz"


# -- the daemon end to end -----------------------------------------------------------------


def test_run_exits_2_with_one_line_when_the_metrics_port_is_taken(
    moto: Moto, tmp_path: Path
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = example_config(out, moto.url, metrics={"listen": f"127.0.0.1:{port}"})
        cfg = write_yaml(tmp_path / "sync.yaml", data)
        result = run_cli("run", "-c", str(cfg), "--log-format", "json")

    assert result.returncode == 2
    # under JSON logs the refusal is one JSON log line like the rest
    events = [json.loads(line) for line in result.stderr.splitlines()]
    errors = [e["error"] for e in events if e["event"] == "startup_failed"]
    assert errors == [
        f"metrics.listen 127.0.0.1:{port}: cannot listen: "
        "address already in use (another secretsync or another program?)"
    ]
    assert "Traceback" not in result.stderr
    # nothing written: at most the lock files that keep a second writer out
    assert all(p.name.endswith(".secretsync-lock") for p in out.iterdir())


def test_health_command_exit_codes_against_a_real_daemon(
    moto: Moto, tmp_path: Path, start_daemon: Any
) -> None:
    moto.seed_use_case()
    port = free_port()
    data = example_config(
        tmp_path / "out",
        moto.url,
        poll={"interval": "200ms", "jitter": 0},
        metrics={"listen": f"127.0.0.1:{port}"},
    )
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    daemon = start_daemon(cfg)
    wait_until(lambda: daemon.has_event("metrics_listening"), 20, "the metrics server")

    healthy = run_cli("health", "-c", str(cfg))
    assert healthy.returncode == 0, healthy.stderr
    assert f"http://127.0.0.1:{port}/healthz: healthy (200)" in healthy.stdout
    explicit = run_cli("health", "--url", f"http://127.0.0.1:{port}/healthz")
    assert explicit.returncode == 0
    not_found = run_cli("health", "--url", f"http://127.0.0.1:{port}/nope")
    assert not_found.returncode == 1
    assert "unhealthy (404)" in not_found.stderr

    assert daemon.has_event("metrics_listening", host="127.0.0.1", port=port)
    # an idle keep-alive scrape connection must not hold up the shutdown
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    idle.request("GET", "/metrics")
    assert idle.getresponse().read()
    try:
        assert daemon.stop() < 5
    finally:
        idle.close()
    assert daemon.proc.returncode == 0
    down = run_cli("health", "-c", str(cfg))
    assert down.returncode == 1
    assert "unreachable" in down.stderr
    assert "Traceback" not in down.stderr


@pytest.mark.slow
async def test_health_command_exits_1_on_503(tmp_path: Path) -> None:
    probes = Probes(lambda: time.monotonic() - 1000.0, lambda: 1.0, lambda: [])
    server = MonitoringServer(Metrics(), probes, host="127.0.0.1", port=0, min_window_s=0)
    await server.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "secretsync",
            "health",
            "--url",
            server.url + "/healthz",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        await server.stop()
    assert proc.returncode == 1
    assert b"unhealthy (503)" in stderr


@pytest.mark.slow
def test_health_command_without_a_config_file_uses_the_default_url(tmp_path: Path) -> None:
    result = run_cli("health", "-c", str(tmp_path / "missing.yaml"))
    # 0 or 1 depending on whether something answers on 9464 here; never a config error
    assert result.returncode in (0, 1)
    assert DEFAULT_HEALTH_URL in result.stdout + result.stderr
    assert "config error" not in result.stderr


@pytest.mark.slow
async def test_healthz_fails_naming_a_task_that_keeps_failing() -> None:
    failing: list[str] = []
    probes = Probes(
        last_poll_started=time.monotonic,
        poll_interval_s=lambda: 10.0,
        not_ready=lambda: [],
        failing_tasks=lambda: failing,
    )
    server = MonitoringServer(Metrics(), probes, host="127.0.0.1", port=0)
    await server.start()
    try:
        assert (await get(server.url + "/healthz"))[0] == 200
        failing.append("notify")  # the supervisor gave up waiting for it to recover
        status, _, body = await get(server.url + "/healthz")
        assert status == 503
        assert json.loads(body)["failing_tasks"] == ["notify"]
    finally:
        await server.stop()


async def test_readiness_is_kept_once_reached_even_when_a_reload_adds_a_broken_output(
    tmp_path: Path, make_rig: Any
) -> None:
    out = tmp_path / "out"
    data = config_data(out)
    store = seeded_source()
    store.fail(SR_ID, ("ResourceNotFoundException", "gone", False))
    r = make_rig(parse_config(data), store)
    await r.syncer.cycle()
    # the outputs from the Schema Registry secret were never written: not ready yet
    schema, combined = str(out / "schema-registry.properties"), str(out / "combined.properties")
    assert r.syncer.not_ready() == [schema, combined]
    store.heal()
    await r.syncer.cycle()
    assert r.syncer.not_ready() == []
    assert r.sample("secretsync_ready") == 1

    # a reload adds an output that cannot be written: the app ran without it, so the
    # pod stays in service; /fresh and the metrics report it
    data["outputs"].append({"path": str(out / "extra.properties"), "secrets": [{"id": "nope"}]})
    r.syncer.reconfigure(parse_config(data))
    await r.syncer.cycle()
    assert r.syncer.not_ready() == []
    assert r.syncer.stale() == [str(out / "extra.properties")]
    assert r.sample("secretsync_ready") == 1
    assert r.sample("secretsync_fresh") == 0
