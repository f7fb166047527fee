"""Prometheus metrics of the contract and the HTTP server that exposes them.

This is the only module that imports prometheus_client. Label values are
bounded: secret ids and paths come from the config, operations from botocore,
outcomes and reasons from fixed words. No label ever carries a secret value.

:class:`MetricsServer` serves ``/metrics``, ``/healthz`` and ``/readyz`` from
the daemon's own event loop (aiohttp). It learns about the agent only through
:class:`Probes` (three callables), so it never reaches into agent internals.
:func:`check_health` is the client side used by ``secretsync health``.
"""

from __future__ import annotations

import errno
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from secretsync import __version__

DEFAULT_HEALTH_URL = "http://127.0.0.1:9464/healthz"
HEALTH_INTERVALS = 3  # /healthz fails when no poll started within this many intervals…
HEALTH_MIN_WINDOW_S = 60.0  # …but never sooner than this: one poll with AWS timeouts and
# retries can take tens of seconds, and a slow backend must not make the sidecar "unhealthy"
SHUTDOWN_TIMEOUT_S = 1.0  # in-flight scrapes get this long at shutdown

# Label words declared at zero up front (see Metrics.declare); others may still appear.
AWS_OPERATIONS = ("DescribeSecret", "GetSecretValue")
AWS_OUTCOMES = ("ok", "throttled", "error")
SYNC_ERROR_REASONS = ("fetch", "throttled", "render", "write")
NOTIFY_OUTCOMES = ("ok", "error")


class Metrics:
    """Every ``secretsync_*`` metric, registered on ``registry`` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.aws_requests = Counter(
            "secretsync_aws_requests",
            "Secrets Manager HTTP requests, retries included.",
            ["operation", "outcome"],
            registry=r,
        )
        self.secret_changes = Counter(
            "secretsync_secret_changes",
            "AWSCURRENT version changes seen (the first fetch counts).",
            ["secret"],
            registry=r,
        )
        self.file_writes = Counter(
            "secretsync_file_writes",
            "Output files replaced with new content.",
            ["path"],
            registry=r,
        )
        self.sync_errors = Counter(
            "secretsync_sync_errors",
            "Failed syncs of an output, by reason.",
            ["path", "reason"],
            registry=r,
        )
        self.notify = Counter(
            "secretsync_notify",
            "Notifications sent, by outcome.",
            ["target", "outcome"],
            registry=r,
        )
        self.last_success = Gauge(
            "secretsync_last_success_timestamp_seconds",
            "Unix time an output was last confirmed current.",
            ["path"],
            registry=r,
        )
        self.poll_duration = Histogram(
            "secretsync_poll_duration_seconds",
            "Duration of one poll cycle.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.ready = Gauge(
            "secretsync_ready", "1 when every output is synced and fresh.", registry=r
        )
        self.build_info = Gauge(
            "secretsync_build_info", "Build information.", ["version"], registry=r
        )
        self.drift_repairs = Counter(
            "secretsync_drift_repairs",
            "Output files restored after someone else changed them.",
            ["path"],
            registry=r,
        )
        self.config_reloads = Counter(
            "secretsync_config_reloads", "Config reloads, by outcome.", ["outcome"], registry=r
        )
        self.build_info.labels(version=__version__).set(1)
        for outcome in ("ok", "error"):
            self.config_reloads.labels(outcome=outcome)
        for operation in AWS_OPERATIONS:
            for outcome in AWS_OUTCOMES:
                self.aws_requests.labels(operation=operation, outcome=outcome)

    def __repr__(self) -> str:
        return f"Metrics(registry={self.registry!r})"

    def declare(
        self, *, paths: Iterable[str], secrets: Iterable[str], targets: Iterable[str] = ()
    ) -> None:
        """Create the label sets of the config's outputs, secrets and targets at zero.

        A counter series that appears directly at 1 is invisible to PromQL's
        ``increase()``, so the first error would never alert; declared at 0 it does.
        Safe to call again after a reload (existing values are kept).
        """
        for path in paths:
            self.file_writes.labels(path=path)
            self.drift_repairs.labels(path=path)
            for reason in SYNC_ERROR_REASONS:
                self.sync_errors.labels(path=path, reason=reason)
        for secret in secrets:
            self.secret_changes.labels(secret=secret)
        for target in targets:
            for outcome in NOTIFY_OUTCOMES:
                self.notify.labels(target=target, outcome=outcome)

    def observe_request(self, operation: str, outcome: str) -> None:
        """Count one real Secrets Manager HTTP attempt (hooked into the botocore client)."""
        self.aws_requests.labels(operation=operation, outcome=outcome).inc()


class _WithoutCreated(Collector):
    """The registry minus the ``*_created`` samples of counters and histograms.

    prometheus_client exposes them as extra gauge families in the text format;
    across hundreds of sidecars they double the series count and nobody graphs them.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():  # fresh objects on every collect
            if family.type in ("counter", "histogram"):
                family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


class MetricsServerError(Exception):
    """The metrics server could not listen (``str()`` is a one-line message for the user)."""


@dataclass(frozen=True)
class Probes:
    """What the server needs to know about the daemon, as callables (cheap, no I/O).

    ``last_poll_started``: monotonic time the last poll cycle started, ``None``
    before the first. ``poll_interval_s``: the configured interval (may change
    on reload). ``not_ready``: the outputs not synced yet or older than the
    staleness limit (empty when ready).
    """

    last_poll_started: Callable[[], float | None]
    poll_interval_s: Callable[[], float]
    not_ready: Callable[[], Sequence[str]]


@dataclass(frozen=True)
class Health:
    """One /healthz verdict; ``detail`` is the JSON body."""

    ok: bool
    detail: dict[str, Any]


def split_listen(listen: str) -> tuple[str, int]:
    """``"host:port"`` → (host, port); ``"[::1]:9464"`` → ("::1", 9464); empty host = all."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` over aiohttp, in the caller's event loop.

    The constructor only stores its arguments; :meth:`start` binds (and raises
    :class:`MetricsServerError` if the address is taken), :meth:`stop` closes,
    :meth:`move` re-binds on another address (config reload). Port 0 binds an
    ephemeral port; :attr:`port` tells which.
    """

    def __init__(
        self,
        metrics: Metrics,
        probes: Probes,
        *,
        host: str = "0.0.0.0",
        port: int = 9464,
        clock: Callable[[], float] = time.monotonic,
        min_window_s: float = HEALTH_MIN_WINDOW_S,
    ) -> None:
        self.metrics = metrics
        self.probes = probes
        self.host = host
        self.requested_port = port
        self.min_window_s = min_window_s
        self._clock = clock
        self._started_at: float | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._exposed = _WithoutCreated(metrics.registry)

    def __repr__(self) -> str:
        return f"MetricsServer(host={self.host!r}, port={self.port}, running={self.running})"

    # -- verdicts (also usable without HTTP, e.g. by a systemd watchdog) -----------------

    def health(self) -> Health:
        """Healthy while a poll cycle started within max(3 intervals, ``min_window_s``).

        Before the first cycle the window counts from :meth:`start`. AWS errors
        do not matter here: a failing cycle is still a cycle, and restarting the
        sidecar would not fix the backend. Only a stuck or dead loop fails.
        """
        now = self._clock()
        window_s = max(HEALTH_INTERVALS * self.probes.poll_interval_s(), self.min_window_s)
        last = self.probes.last_poll_started()
        since = last if last is not None else self._started_at
        age_s = None if since is None else max(0.0, now - since)
        ok = age_s is not None and age_s <= window_s
        return Health(
            ok,
            {
                "healthy": ok,
                "polled": last is not None,
                "last_poll_age_s": None if age_s is None else round(age_s, 3),
                "window_s": window_s,
            },
        )

    def not_ready(self) -> list[str]:
        """Outputs not ready (see :class:`Probes`); also keeps ``secretsync_ready`` in step."""
        pending = sorted(self.probes.not_ready())
        self.metrics.ready.set(0 if pending else 1)
        return pending

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._site is not None

    @property
    def port(self) -> int:
        """The bound port once started (useful with port 0), else the requested one."""
        if self._runner is not None:
            for address in self._runner.addresses:
                return int(address[1])
        return self.requested_port

    @property
    def url(self) -> str:
        """Base URL to reach the server from this host (wildcard hosts → loopback)."""
        return f"http://{_url_host(self.host)}:{self.port}"

    async def start(self) -> None:
        """Bind and serve. Raises MetricsServerError when the address is in use or invalid."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        try:
            self._site = await self._bind(runner, self.host, self.requested_port)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._started_at = self._clock()

    async def stop(self) -> None:
        """Stop listening and close connections (in-flight scrapes get a second). Idempotent."""
        runner, self._runner, self._site = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    async def move(self, host: str, port: int) -> None:
        """Serve on ``host:port`` instead (config reload). No-op if unchanged or not running.

        The old address is released first (the new one may overlap it, e.g. the
        same port on another interface). If the new address cannot be bound the
        old one is bound again and MetricsServerError is raised.
        """
        if (host, port) == (self.host, self.requested_port):
            return
        old = (self.host, self.requested_port)
        self.host, self.requested_port = host, port
        if self._runner is None or self._site is None:
            return
        await self._site.stop()
        self._site = None
        try:
            self._site = await self._bind(self._runner, host, port)
        except MetricsServerError:
            self.host, self.requested_port = old
            self._site = await self._bind(self._runner, *old)
            raise

    async def reconfigure(self, listen: str | None) -> None:
        """Follow a (reloaded) ``metrics.listen``: None stops the server; an address
        moves it there, starting it if it was stopped. Raises MetricsServerError
        when the address is taken (a running server then stays where it was).
        """
        if listen is None:
            await self.stop()
            return
        host, port = split_listen(listen)
        await self.move(host or "0.0.0.0", port)
        if not self.running:
            await self.start()

    @staticmethod
    async def _bind(runner: web.AppRunner, host: str, port: int) -> web.TCPSite:
        site = web.TCPSite(runner, host or None, port)
        try:
            await site.start()
        except OSError as exc:
            await site.stop()
            where = f"{_url_host(host) if host else '*'}:{port}"
            if exc.errno == errno.EADDRINUSE:
                reason = "address already in use (another secretsync or another program?)"
            else:
                reason = exc.strerror or type(exc).__name__
            raise MetricsServerError(f"metrics.listen {where}: cannot listen: {reason}") from None
        return site

    # -- handlers -----------------------------------------------------------------------

    async def _metrics(self, request: web.Request) -> web.Response:
        self.not_ready()  # the gauge reflects staleness even between poll cycles
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(self._exposed)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _healthz(self, _request: web.Request) -> web.Response:
        verdict = self.health()
        return web.json_response(verdict.detail, status=200 if verdict.ok else 503)

    async def _readyz(self, _request: web.Request) -> web.Response:
        pending = self.not_ready()
        if pending:
            return web.json_response({"ready": False, "not_ready": pending}, status=503)
        return web.json_response({"ready": True})


def _url_host(host: str) -> str:
    """A host as written in a URL for a local client: wildcards become loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def health_url(listen: str | None) -> str:
    """The /healthz URL for a ``metrics.listen`` value; the default when it is None."""
    if listen is None:
        return DEFAULT_HEALTH_URL
    host, port = split_listen(listen)
    return f"http://{_url_host(host)}:{port}/healthz"


def check_health(url: str, timeout_s: float = 3.0) -> tuple[bool, str]:
    """GET ``url``: (True, summary) on HTTP 200, else (False, reason). Never raises for I/O.

    Proxies from the environment are ignored: this always talks to a local daemon.
    """
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as resp:
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    except (OSError, ValueError) as exc:  # refused, timeout, bad URL
        reason = getattr(exc, "reason", None) or exc
        return False, f"{url}: unreachable: {reason}"
    if status == 200:
        return True, f"{url}: healthy (200)"
    return False, f"{url}: unhealthy ({status})"
