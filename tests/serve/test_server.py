"""server.py: the metrics server's limits, against real sockets and real hostile clients.

A flood of half-sent requests, a slowloris, oversize requests and bodies; while
the server is under pressure the daemon around it must keep its probes, scrapes,
AWS calls, files and config reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
import resource
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from secretsync.config.model import parse_config
from secretsync.metrics import Metrics
from secretsync.output.writer import OutputWriter
from secretsync.serve.server import (
    HEADER_TIMEOUT_S,
    MAX_CONNECTIONS,
    MonitoringServer,
    Probes,
    ServerLimits,
)
from secretsync.source.secretsmanager import SecretsManagerSource
from secretsync.sync.syncer import Syncer
from tests.support.configs import example_config, write_yaml
from tests.support.flood import fd_budget, half_sent_flood, scrape_flood
from tests.support.inproc import Start
from tests.support.memsource import MemorySource
from tests.support.motoserver import Moto, free_port
from tests.support.seeds import REGION
from tests.support.wait import async_wait_until

FLOOD = 1100  # more than the 1024 descriptors a default container gives a process
ALWAYS_HEALTHY = Probes(lambda: time.monotonic(), lambda: 30.0, lambda: [])


async def get(url: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp,
    ):
        return resp.status, await resp.text()


async def answers_200(url: str) -> str | None:
    """The body when ``url`` answers 200 now; None on any other answer or error."""
    try:
        status, body = await get(url)
    except (aiohttp.ClientError, TimeoutError):
        return None
    return body if status == 200 else None


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    raise AssertionError(f"no sample {name}{labels}")


async def exchange(port: int, data: bytes, timeout_s: float = 30) -> bytes:
    """Send ``data`` on a fresh connection, read until the server closes; b"" on a reset."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        try:
            await writer.drain()
            return await asyncio.wait_for(reader.read(), timeout_s)
        except ConnectionError:
            return b""
    finally:
        writer.transport.abort()


async def closed_without_response(reader: asyncio.StreamReader) -> bool:
    """Wait (bounded) for the server to close this connection; True if it sent nothing."""
    try:
        return await asyncio.wait_for(reader.read(), 10) == b""
    except ConnectionResetError:
        return True


def status_of(response: bytes) -> int | None:
    """The status code of a raw HTTP response; None when there was none (closed)."""
    if not response:
        return None
    return int(response.split(b" ", 2)[1])


@pytest.fixture
async def server() -> Any:
    srv = MonitoringServer(Metrics(), ALWAYS_HEALTHY, host="127.0.0.1", port=0)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


# -- a flood of half-sent requests ----------------------------------------------------------


async def test_a_flood_of_half_sent_requests_leaves_room_for_probes_scrapes_and_syncing(
    moto: Moto, tmp_path: Path
) -> None:
    moto.seed_use_case()
    config = parse_config(example_config(tmp_path / "out", moto.url))
    metrics = Metrics()
    source = SecretsManagerSource(
        region=REGION, endpoint_url=moto.url, on_request=metrics.request_observer(REGION)
    )
    writer = OutputWriter(metrics)
    async with source:
        agent = Syncer(config, source, writer, metrics=metrics)
        writer.manage([o.path for o in config.outputs])
        probes = Probes(
            last_poll_started=lambda: agent.last_cycle_started,
            poll_interval_s=lambda: agent.config.poll.interval_s,
            not_ready=agent.not_ready,
        )
        srv = MonitoringServer(metrics, probes, host="127.0.0.1", port=0)
        await srv.start()  # (this raises the soft fd limit; the budget below is set after)
        try:
            # a process that cannot open as many descriptors as the flood has connections
            with fd_budget(headroom=MAX_CONNECTIONS + 300) as limit:
                assert limit < FLOOD
                async with half_sent_flood("127.0.0.1", srv.port, FLOOD) as flood:
                    # the server kept accepting: every connection went through
                    assert (flood.connected, flood.failed) == (FLOOD, 0)
                    assert srv.connections <= MAX_CONNECTIONS

                    await async_wait_until(lambda: answers_200(srv.url + "/healthz"), 30, "200")
                    # the daemon's own work needs new sockets and files: it still has them
                    await agent.cycle()
                    assert agent.all_current()
                    files = [(tmp_path / f"f{i}").open("w") for i in range(50)]
                    for f in files:
                        f.close()
                    text = await async_wait_until(lambda: answers_200(srv.url + "/metrics"), 30)
                    ok = {"operation": "DescribeSecret", "outcome": "ok", "region": REGION}
                    assert sample(text, "secretsync_aws_requests_total", **ok) == 2
                    assert sample(text, "secretsync_ready") == 1
                    assert srv.shed["evicted"] >= FLOOD - MAX_CONNECTIONS
        finally:
            await srv.stop()
            writer.close()


@pytest.mark.slow
async def test_at_the_cap_the_oldest_half_sent_request_makes_room_for_a_probe() -> None:
    limits = ServerLimits(max_connections=4, header_timeout_s=120)
    srv = MonitoringServer(Metrics(), ALWAYS_HEALTHY, host="127.0.0.1", port=0, limits=limits)
    await srv.start()
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for n in range(1, 5):
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(b"GET /metrics HTTP/1.1\r\n")
            held.append((reader, writer))
            await async_wait_until(lambda n=n: srv.connections == n, 10, f"{n} connections")

        assert await answers_200(srv.url + "/healthz")
        assert await closed_without_response(held[0][0])  # the oldest
        await async_wait_until(lambda: srv.connections == 3, 10, "the probe's connection closed")
        assert srv.shed["evicted"] == 1
        assert not any(reader.at_eof() for reader, _ in held[1:])
    finally:
        for _, writer in held:
            writer.transport.abort()
        await srv.stop()


async def test_the_daemon_keeps_syncing_reloading_and_answering_under_a_flood(
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
    await async_wait_until(lambda: daemon.has_event("metrics_listening"), 30, "the server")
    # the descriptors of a default container, which the daemon cannot raise
    try:
        resource.prlimit(daemon.proc.pid, resource.RLIMIT_NOFILE, (1024, 1024))
    except (AttributeError, OSError) as exc:
        pytest.skip(f"cannot limit the daemon's descriptors here: {type(exc).__name__}")
    url = f"http://127.0.0.1:{port}"
    describe_ok = {"operation": "DescribeSecret", "outcome": "ok", "region": REGION}

    async with half_sent_flood("127.0.0.1", port, FLOOD) as flood:
        assert (flood.connected, flood.failed) == (FLOOD, 0)
        await async_wait_until(lambda: answers_200(url + "/healthz"), 30, "/healthz 200")
        text = await async_wait_until(lambda: answers_200(url + "/metrics"), 30, "a scrape")
        before = sample(text, "secretsync_aws_requests_total", **describe_ok)

        async def polled_twice_more() -> bool:
            body = await answers_200(url + "/metrics")
            return body is not None and (
                sample(body, "secretsync_aws_requests_total", **describe_ok) >= before + 4
            )

        await async_wait_until(polled_twice_more, 30, "DescribeSecret calls to keep succeeding")

        data["poll"] = {"interval": "300ms", "jitter": 0}
        write_yaml(cfg, data)

        async def reloaded() -> bool:
            body = await answers_200(url + "/metrics")
            return body is not None and (
                sample(body, "secretsync_config_reloads_total", outcome="ok") == 1
            )

        await async_wait_until(reloaded, 30, "the config reload")
        health = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "secretsync", "health", "-c", str(cfg)
        )
        assert await asyncio.wait_for(health.wait(), 30) == 0

    events = daemon.events()
    assert not [e for e in events if e.get("level") == "error" or e["event"] == "<non-json>"]
    # ~1,000 evictions, summarised at most once a minute: never a line per connection
    assert 1 <= len([e for e in events if e["event"] == "http_connections_shed"]) <= 5


# -- slow and oversize requests -------------------------------------------------------------


@pytest.mark.slow
async def test_a_slowloris_is_closed_after_the_header_timeout(server: MonitoringServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    trickle = b"X-Slow: " + b"a" * 120 + b"\r\n\r\n"  # 130 s at a byte a second
    closed_after: int | None = None
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for sent, byte in enumerate(trickle):
            try:
                writer.write(bytes([byte]))
                await writer.drain()
                # the pace: a byte a second, unless the server closes first
                if await asyncio.wait_for(reader.read(1), 1.0) == b"":
                    closed_after = sent
                    break
            except TimeoutError:
                continue
            except ConnectionError:
                closed_after = sent
                break
    finally:
        writer.transport.abort()
    assert closed_after is not None, "the server waited for the whole trickle"
    assert closed_after < HEADER_TIMEOUT_S + 30  # generous: only catches "never"
    assert server.shed["timed_out"] == 1


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
            id="1x100KB",
        ),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-%d: " % i + b"a" * 6000 + b"\r\n" for i in range(20))
            + b"\r\n",
            id="20x6KB",
        ),
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-%d: a\r\n" % i for i in range(40))
            + b"\r\n",
            id="40-headers",
        ),
    ],
)
@pytest.mark.slow
async def test_oversize_headers_get_4xx_or_a_closed_connection(
    server: MonitoringServer, request_bytes: bytes
) -> None:
    status = status_of(await exchange(server.port, request_bytes))
    assert status is None or 400 <= status < 500, status
    assert await answers_200(server.url + "/healthz")


@pytest.mark.slow
async def test_an_oversize_request_line_gets_414_or_400(server: MonitoringServer) -> None:
    line = b"GET /healthz?" + b"q" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert status_of(await exchange(server.port, line)) in (400, 414)


@pytest.mark.parametrize("size", [10, 100_000])
@pytest.mark.parametrize("method", [b"GET", b"POST"])
@pytest.mark.slow
async def test_a_request_body_is_refused(
    server: MonitoringServer, method: bytes, size: int
) -> None:
    head = b"%s /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (method, size)
    status = status_of(await exchange(server.port, head + b"a" * size))
    assert status is None or 400 <= status < 500, status


@pytest.mark.slow
async def test_a_prometheus_scrape_fits_the_limits(server: MonitoringServer) -> None:
    scrape = (
        b"GET /metrics HTTP/1.1\r\nHost: 10.1.2.3:9464\r\nUser-Agent: Prometheus/2.53.0\r\n"
        b"Accept: application/openmetrics-text;version=1.0.0;q=0.5,"
        b"text/plain;version=0.0.4;q=0.4,*/*;q=0.1\r\nAccept-Encoding: gzip\r\n"
        b"X-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n"
    )
    response = await exchange(server.port, scrape)
    assert status_of(response) == 200
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"\r\ncontent-encoding: gzip" in head.lower()  # built (and gzipped) off the loop
    assert b"secretsync_build_info" in gzip.decompress(body)


@pytest.mark.slow
async def test_one_request_per_connection(server: MonitoringServer) -> None:
    twice = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2  # pipelined
    response = await exchange(server.port, twice)  # returns once the server closes
    assert status_of(response) == 200
    assert response.count(b"HTTP/1.1 ") == 1
    head = response.partition(b"\r\n\r\n")[0].lower()
    assert b"\r\nconnection: close" in head
    body = response.partition(b"\r\n\r\n")[2]
    assert json.loads(body)["healthy"] is True
    not_found = await exchange(server.port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(not_found) == 404
    assert b"\r\nconnection: close" in not_found.lower()


@pytest.mark.slow
async def test_a_flood_of_bad_requests_is_summarised_not_logged_each(
    server: MonitoringServer, log_buffer: io.StringIO, capfd: pytest.CaptureFixture[str]
) -> None:
    for _ in range(50):
        assert status_of(await exchange(server.port, b"NOT HTTP AT ALL\r\n\r\n")) == 400
    assert server.shed["bad_request"] == 50
    shed = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    shed = [e for e in shed if e["event"] == "http_connections_shed"]
    assert len(shed) == 1
    assert shed[0]["level"] == "debug"
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err  # aiohttp's own per-request error log is silenced


# -- many scrapers of a big daemon ------------------------------------------------------------

MANY_OUTPUTS = 1000
SCRAPERS = 64
HEALTHZ_BOUND_S = 5.0  # generous: the shipped probes time out after 2 s; this catches 7–9 s


def probe_healthz(url: str) -> tuple[int | None, float]:
    """GET /healthz from a thread of its own: (status or None, seconds it took)."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            status: int | None = int(resp.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    except OSError:
        status = None
    return status, time.monotonic() - started


@pytest.mark.slow
async def test_many_scrapers_of_a_thousand_outputs_leave_healthz_and_polls_alone(
    tmp_path: Path, run_inproc: Start
) -> None:
    store = MemorySource()
    out = tmp_path / "out"
    outputs = []
    for i in range(MANY_OUTPUTS):
        store.put(f"app/s{i:04d}", {"key": f"value-{i}"})
        outputs.append(
            {"path": str(out / f"o{i:04d}.properties"), "secrets": [{"id": f"app/s{i:04d}"}]}
        )
    port = free_port()
    cfg = write_yaml(
        tmp_path / "sync.yaml",
        {
            "aws": {"region": "us-east-1"},
            "poll": {"interval": "1s", "jitter": 0},
            "metrics": {"listen": f"127.0.0.1:{port}"},
            "outputs": outputs,
        },
    )
    r = await run_inproc(cfg, store, serve_metrics=True)
    await async_wait_until(r.syncer.all_current, 120, "the first sync of every output")
    url = f"http://127.0.0.1:{port}"
    target = out / "o0500.properties"

    async with scrape_flood("127.0.0.1", port, SCRAPERS, ["/metrics", "/status"]) as flood:
        cycles = r.syncer.cycles
        worst = 0.0
        for _ in range(20):
            status, took = await asyncio.to_thread(probe_healthz, url + "/healthz")
            assert status == 200
            worst = max(worst, took)
        # a rotation is still applied, and polls keep coming
        store.put("app/s0500", {"key": "rotated-under-load"})
        await async_wait_until(
            lambda: b"rotated-under-load" in target.read_bytes(), 60, "the rotation under load"
        )
        await async_wait_until(lambda: r.syncer.cycles >= cycles + 5, 60, "five more polls")
        for _ in range(5):
            status, took = await asyncio.to_thread(probe_healthz, url + "/healthz")
            assert status == 200
            worst = max(worst, took)
    assert worst < HEALTHZ_BOUND_S, f"/healthz took {worst:.1f}s under {SCRAPERS} scrapers"
    assert flood.answers.get(200, 0) >= SCRAPERS  # the scrapers were served, not just refused


@pytest.mark.slow
async def test_concurrent_scrapes_share_a_build_and_never_see_data_older_than_the_request(
    server: MonitoringServer,
) -> None:
    results = await asyncio.gather(*(get(server.url + "/metrics") for _ in range(30)))
    assert all(status == 200 for status, _ in results)
    assert server.builds < 30  # many waited for one build (a few waves at most)
    for n in range(1, 4):
        server.metrics.config_reloads.labels(outcome="ok").inc()
        _, text = await get(server.url + "/metrics")  # right after the previous scrape
        assert sample(text, "secretsync_config_reloads_total", outcome="ok") == n


class SlowCollector(Collector):
    """A collector that holds every collection (in the build thread) until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def collect(self) -> Iterator[Metric]:
        self.entered.set()
        self.release.wait(60)
        return iter(())


@contextlib.asynccontextmanager
async def slow_build_server(
    limits: ServerLimits,
) -> AsyncIterator[tuple[MonitoringServer, SlowCollector]]:
    """A started server whose /metrics builds hold until the collector is released; on
    exit the collector is released and the server stopped."""
    metrics = Metrics()
    slow = SlowCollector()
    metrics.registry.register(slow)
    srv = MonitoringServer(metrics, ALWAYS_HEALTHY, host="127.0.0.1", port=0, limits=limits)
    await srv.start()
    try:
        yield srv, slow
    finally:
        slow.release.set()
        await srv.stop()


@pytest.mark.slow
async def test_scrapes_waiting_for_their_answer_make_room_for_a_probe() -> None:
    async with slow_build_server(ServerLimits(max_connections=4)) as (srv, slow):
        # raw clients: aiohttp's would quietly retry the one that is evicted
        scrape = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        scrapes = [asyncio.create_task(exchange(srv.port, scrape)) for _ in range(4)]
        try:
            await async_wait_until(slow.entered.is_set, 10, "a build in its collector")
            await async_wait_until(lambda: srv.connections == 4, 10, "four scrapes waiting")
            # every connection is in a handler, waiting for the build: the probe still gets in
            assert await answers_200(srv.url + "/healthz")
            assert srv.shed["evicted"] == 1
            slow.release.set()
            done = await asyncio.gather(*scrapes)
            assert sorted(map(status_of, done), key=str) == [200, 200, 200, None]
        finally:
            slow.release.set()
            await asyncio.gather(*scrapes, return_exceptions=True)


@pytest.mark.slow
async def test_beyond_max_busy_a_scrape_is_answered_503_at_once() -> None:
    async with slow_build_server(ServerLimits(max_busy=2)) as (srv, slow):
        scrapes = [asyncio.create_task(get(srv.url + "/metrics")) for _ in range(2)]
        try:
            await async_wait_until(lambda: srv.connections == 2, 10, "two scrapes waiting")
            status, body = await get(srv.url + "/metrics")
            assert status == 503 and "busy" in body
            assert srv.shed["busy"] == 1
            assert await answers_200(srv.url + "/readyz")  # probes are not costly
            slow.release.set()
            assert [s for s, _ in await asyncio.gather(*scrapes)] == [200, 200]
        finally:
            slow.release.set()
            await asyncio.gather(*scrapes, return_exceptions=True)


@pytest.mark.slow
async def test_a_handler_past_its_deadline_answers_504() -> None:
    async with slow_build_server(ServerLimits(handler_timeout_s=0.5)) as (srv, _):
        status, body = await get(srv.url + "/metrics")
        assert status == 504, (status, body)  # a gateway timeout, not a crash (500)
        assert await answers_200(srv.url + "/healthz")
