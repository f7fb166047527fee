"""metrics.web_config: HTTPS, client certificates and basic auth, against real TLS clients.

Certificates are made per test (tests/support/certs.py); the server is a real
MonitoringServer on an ephemeral loopback port; clients are aiohttp and the
standard library's ssl, with right and wrong credentials and certificates.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest

from secretsync.config.model import ConfigError, parse_config
from secretsync.config.sections import MetricsConfig
from secretsync.metrics import Metrics
from secretsync.serve.server import MonitoringServer, MonitoringServerError, Probes, ServerLimits
from secretsync.serve.websec import TLS_CHECK_INTERVAL_S, web_security
from tests.support.certs import Ca, Pair, client_context, common_name, make_ca
from tests.support.configs import write_yaml
from tests.support.inproc import Start
from tests.support.memsource import MemorySource
from tests.support.motoserver import free_port
from tests.support.wait import async_wait_until

PASSWORD = "CANARY-scrape-pw-4e1"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()  # cheap for tests
STATUS = {"current": True, "applied": True, "outputs": [], "secrets": []}
PROBES = Probes(time.monotonic, lambda: 30.0, lambda: [], status=lambda: dict(STATUS))
OPEN = ("/healthz", "/readyz", "/fresh")
PROTECTED = ("/metrics", "/status")


@pytest.fixture
def ca(tmp_path: Path) -> Ca:
    return make_ca(tmp_path / "pki")


@pytest.fixture
def server_pair(ca: Ca, tmp_path: Path) -> Pair:
    return ca.issue(tmp_path / "pki", "secretsync-server")


def tls(pair: Pair, **extra: Any) -> dict[str, Any]:
    return {"cert_file": str(pair.cert), "key_file": str(pair.key), **extra}


@asynccontextmanager
async def serving(metrics: dict[str, Any], **kwargs: Any) -> AsyncIterator[MonitoringServer]:
    config = MetricsConfig.model_validate({"listen": "127.0.0.1:0", **metrics})
    server = MonitoringServer(
        Metrics(),
        PROBES,
        host="127.0.0.1",
        port=0,
        security=web_security(config),
        **kwargs,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def fetch(
    url: str, context: ssl.SSLContext | None = None, auth: tuple[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    headers = {"Authorization": basic(*auth)} if auth else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            url,
            ssl=context if context is not None else True,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=10),
        ) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.text()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def handshake(port: int, context: ssl.SSLContext) -> str:
    """Open a TLS connection and return the server certificate's CN."""
    _reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost"), 10
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True)
        return common_name(der)
    finally:
        writer.close()


# -- HTTPS and basic auth -----------------------------------------------------------------


@pytest.mark.slow
async def test_basic_auth_over_https_guards_metrics_and_status_but_not_the_probes(
    ca: Ca, server_pair: Pair, log_buffer: io.StringIO
) -> None:
    web = {"tls_server_config": tls(server_pair), "basic_auth_users": {"prometheus": HASH}}
    async with serving({"web_config": web}) as server:
        assert server.url.startswith("https://127.0.0.1:")
        context = client_context(ca)
        for path in OPEN:  # the kubelet's probes carry no credentials
            status, _, _ = await fetch(server.url + path, context)
            assert status == 200, path
        for path in PROTECTED:
            status, headers, _ = await fetch(server.url + path, context)
            assert status == 401, path
            assert headers["WWW-Authenticate"].startswith("Basic realm=")
            assert (await fetch(server.url + path, context, ("prometheus", "wrong")))[0] == 401
            assert (await fetch(server.url + path, context, ("nobody", PASSWORD)))[0] == 401
            status, _, _ = await fetch(server.url + path, context, ("prometheus", PASSWORD))
            assert status == 200, path
        assert (
            "secretsync_build_info"
            in (await fetch(server.url + "/metrics", context, ("prometheus", PASSWORD)))[2]
        )
        assert server.shed["denied"] == 6
        # an unknown path is refused before it is looked up: nothing tells what exists
        assert (await fetch(server.url + "/nope", context))[0] == 401
    assert PASSWORD not in log_buffer.getvalue()


@pytest.mark.slow
async def test_a_password_is_checked_with_bcrypt_once_then_remembered(
    ca: Ca, server_pair: Pair
) -> None:
    web = {"tls_server_config": tls(server_pair), "basic_auth_users": {"prometheus": HASH}}
    async with serving({"web_config": web}) as server:
        context = client_context(ca)
        for _ in range(5):
            assert (await fetch(server.url + "/metrics", context, ("prometheus", PASSWORD)))[
                0
            ] == 200
        assert server.security is not None and server.security.auth is not None
        assert server.security.auth.checks == 1
        await fetch(server.url + "/metrics", context, ("prometheus", "wrong"))
        await fetch(server.url + "/metrics", context, ("prometheus", "wrong"))
        assert server.security.auth.checks == 3  # a wrong password is never remembered


@pytest.mark.slow
async def test_basic_auth_without_tls_works_too(tmp_path: Path) -> None:
    async with serving({"web_config": {"basic_auth_users": {"u": HASH}}}) as server:
        assert server.url.startswith("http://")
        assert (await fetch(server.url + "/status"))[0] == 401
        status, _, body = await fetch(server.url + "/status", auth=("u", PASSWORD))
        assert (status, json.loads(body)) == (200, STATUS)
        assert (await fetch(server.url + "/healthz"))[0] == 200


@pytest.mark.slow
async def test_plain_http_to_the_https_port_gets_no_answer(server_pair: Pair) -> None:
    async with serving({"web_config": {"tls_server_config": tls(server_pair)}}) as server:
        with pytest.raises(aiohttp.ClientError):
            await fetch(server.url.replace("https://", "http://") + "/healthz")
        await async_wait_until(lambda: server.shed["tls_failed"] >= 1, 10, "the bad handshake")


@pytest.mark.slow
async def test_a_client_that_does_not_trust_the_server_certificate_fails(
    server_pair: Pair, tmp_path: Path
) -> None:
    other = make_ca(tmp_path / "other", "other-ca")
    async with serving({"web_config": {"tls_server_config": tls(server_pair)}}) as server:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await fetch(server.url + "/healthz", client_context(other))


# -- client certificates --------------------------------------------------------------------


@pytest.mark.slow
async def test_client_certificates_guard_metrics_and_status_and_probes_need_none(
    ca: Ca, server_pair: Pair, tmp_path: Path
) -> None:
    client = ca.issue(tmp_path / "pki", "prometheus", client=True, sans=("prometheus",))
    stranger_ca = make_ca(tmp_path / "stranger", "stranger-ca")
    stranger = stranger_ca.issue(tmp_path / "stranger", "intruder", client=True)
    web = {
        "tls_server_config": tls(
            server_pair, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(ca.cert)
        )
    }
    async with serving({"web_config": web}) as server:
        bare = client_context(ca)
        for path in OPEN:
            assert (await fetch(server.url + path, bare))[0] == 200
        for path in PROTECTED:
            status, _, body = await fetch(server.url + path, bare)
            assert (status, body) == (403, "a client certificate is required")
            assert (await fetch(server.url + path, client_context(ca, client)))[0] == 200
        # a certificate the client CA did not sign ends the handshake, on every path
        with pytest.raises(aiohttp.ClientError):
            await fetch(server.url + "/healthz", client_context(ca, stranger))


@pytest.mark.slow
async def test_with_no_open_paths_a_client_without_a_certificate_fails_the_handshake(
    ca: Ca, server_pair: Pair, tmp_path: Path
) -> None:
    client = ca.issue(tmp_path / "pki", "prometheus", client=True)
    web = {
        "tls_server_config": tls(
            server_pair, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(ca.cert)
        )
    }
    async with serving({"web_config": web, "open_paths": []}) as server:
        with pytest.raises(aiohttp.ClientError):
            await fetch(server.url + "/healthz", client_context(ca))
        assert (await fetch(server.url + "/healthz", client_context(ca, client)))[0] == 200


@pytest.mark.slow
async def test_client_allowed_sans_admit_only_the_named_clients(
    ca: Ca, server_pair: Pair, tmp_path: Path
) -> None:
    allowed = ca.issue(tmp_path / "pki", "prometheus", client=True, sans=("prometheus.monitoring",))
    other = ca.issue(tmp_path / "pki", "someone", client=True, sans=("someone.else",))
    web = {
        "tls_server_config": tls(
            server_pair,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=str(ca.cert),
            client_allowed_sans=["prometheus.monitoring"],
        )
    }
    async with serving({"web_config": web}) as server:
        assert (await fetch(server.url + "/metrics", client_context(ca, allowed)))[0] == 200
        status, _, body = await fetch(server.url + "/metrics", client_context(ca, other))
        assert (status, body) == (403, "the client certificate is not allowed")


@pytest.mark.slow
async def test_verify_client_cert_if_given_lets_anyone_in_and_checks_what_is_given(
    ca: Ca, server_pair: Pair, tmp_path: Path
) -> None:
    stranger = make_ca(tmp_path / "stranger", "stranger-ca").issue(
        tmp_path / "stranger", "intruder", client=True
    )
    web = {
        "tls_server_config": tls(
            server_pair, client_auth_type="VerifyClientCertIfGiven", client_ca_file=str(ca.cert)
        )
    }
    async with serving({"web_config": web}) as server:
        assert (await fetch(server.url + "/metrics", client_context(ca)))[0] == 200
        with pytest.raises(aiohttp.ClientError):
            await fetch(server.url + "/metrics", client_context(ca, stranger))


# -- certificate rotation and hostile handshakes ---------------------------------------------


@pytest.mark.slow
async def test_a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not(
    ca: Ca, tmp_path: Path, log_buffer: io.StringIO
) -> None:
    live = tmp_path / "live"
    first = ca.issue(live, "served")  # live/served.crt, live/served.key
    async with serving({"web_config": {"tls_server_config": tls(first)}}) as server:
        context = client_context(ca)
        first_cn = await handshake(server.port, context)
        assert first_cn == "served"

        # a renewal: new certificate and key for another name, written over the files
        renewed = ca.issue(tmp_path / "next", "renewed")
        first.cert.write_bytes(renewed.cert.read_bytes())
        first.key.write_bytes(renewed.key.read_bytes())
        await async_wait_until(
            lambda: _cn_is(server.port, context, "renewed"),
            TLS_CHECK_INTERVAL_S * 20,
            "the renewed certificate",
        )

        # half a renewal (a certificate whose key is not there yet) keeps the good one
        broken = ca.issue(tmp_path / "broken", "broken")
        first.cert.write_bytes(broken.cert.read_bytes())
        deadline = time.monotonic() + TLS_CHECK_INTERVAL_S * 20
        while "tls_reload_failed" not in log_buffer.getvalue():
            assert time.monotonic() < deadline, "the broken renewal was never noticed"
            assert await handshake(server.port, context) == "renewed"
            await asyncio.sleep(0.1)
        assert await handshake(server.port, context) == "renewed"
        assert (await fetch(server.url + "/healthz", context))[0] == 200
        # the key arrives: the new pair is served
        first.key.write_bytes(broken.key.read_bytes())
        await async_wait_until(
            lambda: _cn_is(server.port, context, "broken"),
            TLS_CHECK_INTERVAL_S * 20,
            "the completed renewal",
        )
    events = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    assert [e["event"] for e in events if e["event"].startswith("tls_")].count(
        "tls_reload_failed"
    ) == 1


async def _cn_is(port: int, context: ssl.SSLContext, name: str) -> bool:
    return await handshake(port, context) == name


@pytest.mark.slow
async def test_unfinished_handshakes_are_capped_evicted_and_timed_out(
    ca: Ca, server_pair: Pair
) -> None:
    limits = ServerLimits(max_connections=4, header_timeout_s=3)
    web = {"web_config": {"tls_server_config": tls(server_pair)}}
    async with serving(web, limits=limits) as server:
        held = []
        try:
            for n in range(1, 5):  # TCP connections that never send a ClientHello
                held.append(await asyncio.open_connection("127.0.0.1", server.port))
                await async_wait_until(lambda n=n: server.connections == n, 10, f"{n} connections")
            assert (await fetch(server.url + "/healthz", client_context(ca)))[0] == 200
            assert server.shed["evicted"] == 1
            await async_wait_until(lambda: server.connections == 0, 30, "the rest timed out")
            assert server.shed["timed_out"] == 3
        finally:
            for _, writer in held:
                writer.transport.abort()


# -- configuration -----------------------------------------------------------------------------


async def test_tls_files_that_cannot_be_used_stop_the_start_naming_the_field(
    server_pair: Pair, tmp_path: Path, ca: Ca
) -> None:
    mismatched = ca.issue(tmp_path / "other", "other")
    for cert, key, needle in (
        (tmp_path / "missing.crt", server_pair.key, "No such file"),
        (server_pair.cert, mismatched.key, "KEY_VALUES_MISMATCH"),
    ):
        web = {"tls_server_config": {"cert_file": str(cert), "key_file": str(key)}}
        with pytest.raises(MonitoringServerError) as caught:
            async with serving({"web_config": web}):
                pass
        message = str(caught.value)
        assert message.startswith("metrics.web_config.tls_server_config: cannot use cert_file")
        assert needle.lower() in message.lower()
        assert "PRIVATE KEY" not in message


def config_error(metrics: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config({"metrics": metrics, "outputs": [{"path": "/o/a", "secrets": [{"id": "s"}]}]})
    return str(caught.value)


def test_web_config_errors_name_the_field_and_never_echo_a_password() -> None:
    plain = config_error({"web_config": {"basic_auth_users": {"prometheus": "hunter2-CANARY"}}})
    assert plain.startswith("metrics.web_config.basic_auth_users.prometheus: expected a bcrypt")
    assert "hunter2-CANARY" not in plain
    unverified = config_error(
        {
            "web_config": {
                "tls_server_config": {
                    "cert_file": "/c",
                    "key_file": "/k",
                    "client_auth_type": "RequireAnyClientCert",
                }
            }
        }
    )
    assert "RequireAndVerifyClientCert" in unverified
    no_ca = config_error(
        {
            "web_config": {
                "tls_server_config": {
                    "cert_file": "/c",
                    "key_file": "/k",
                    "client_auth_type": "RequireAndVerifyClientCert",
                }
            }
        }
    )
    assert "client_ca_file: required" in no_ca
    assert "allowed:" in config_error({"web_config": {"http_server_config": {"http2": False}}})
    assert "/healthz" in config_error({"open_paths": ["/everything"]})


def test_the_default_listen_address_is_loopback() -> None:
    config = parse_config({"outputs": [{"path": "/o/a", "secrets": [{"id": "s"}]}]})
    assert config.metrics.listen == "127.0.0.1:9464"
    assert config.metrics.open_paths == OPEN
    assert web_security(config.metrics) is None  # no TLS, no auth: plain HTTP as before


# -- a reload ------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_reload_turns_on_tls_and_auth_and_a_broken_certificate_is_refused(
    ca: Ca, server_pair: Pair, tmp_path: Path, run_inproc: Start
) -> None:
    store = MemorySource()
    store.put("app/s", {"k": "v"})
    port = free_port()
    data: dict[str, Any] = {
        "aws": {"region": "us-east-1"},
        "poll": {"interval": "200ms"},
        "metrics": {"listen": f"127.0.0.1:{port}"},
        "outputs": [{"path": str(tmp_path / "out" / "a.properties"), "secrets": [{"id": "app/s"}]}],
    }
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    r = await run_inproc(cfg, store, serve_metrics=True, watch=False)
    plain = f"http://127.0.0.1:{port}"
    await async_wait_until(lambda: _status_is(plain + "/metrics", 200), 20, "plain HTTP")

    data["metrics"]["web_config"] = {
        "tls_server_config": tls(server_pair),
        "basic_auth_users": {"prometheus": HASH},
    }
    write_yaml(cfg, data)
    r.reloader.request("sighup")
    secure = f"https://127.0.0.1:{port}"
    context = client_context(ca)
    await async_wait_until(lambda: _status_is(secure + "/metrics", 401, context), 20, "HTTPS")
    assert (await fetch(secure + "/metrics", context, ("prometheus", PASSWORD)))[0] == 200

    # a certificate that cannot be loaded: the reload is refused, HTTPS stays as it was
    data["metrics"]["web_config"]["tls_server_config"]["key_file"] = str(tmp_path / "nope.key")
    write_yaml(cfg, data)
    reloads = r.sample("secretsync_config_reloads_total", outcome="error")
    r.reloader.request("sighup")
    await async_wait_until(
        lambda: r.sample("secretsync_config_reloads_total", outcome="error") > reloads,
        20,
        "the refused reload",
    )
    assert (await fetch(secure + "/metrics", context, ("prometheus", PASSWORD)))[0] == 200


async def _status_is(url: str, status: int, context: ssl.SSLContext | None = None) -> bool:
    try:
        return (await fetch(url, context))[0] == status
    except aiohttp.ClientError:
        return False
