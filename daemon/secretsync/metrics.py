"""Prometheus metrics of the contract, on one registry.

This is the only module that imports prometheus_client. Label values are
bounded: secret ids and paths come from the config, operations from botocore,
outcomes and reasons from fixed words. No label ever carries a secret value.
Next to the ``secretsync_*`` families the registry carries the standard
``process_*`` and ``python_*`` collectors (memory, CPU, fds, start time, GC).

It imports only prometheus_client and the standard library (no aiohttp), and
prometheus_client only when a :class:`Metrics` is made: ``once``, which exposes
no metrics, counts into a :class:`NullMetrics` and never loads it. The HTTP
server that exposes the metrics is :mod:`secretsync.serve.server`, and the
client of ``/healthz`` is :mod:`secretsync.serve.client`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from secretsync import __version__

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.metrics_core import Metric

# Label words declared at zero up front (see Metrics.declare); others may still appear.
AWS_OPERATIONS = ("DescribeSecret", "GetSecretValue")
AWS_OUTCOMES = ("ok", "throttled", "error")
SYNC_ERROR_REASONS = ("fetch", "throttled", "render", "write")
NOTIFY_OUTCOMES = ("ok", "error")
PUSH_OUTCOMES = ("matched", "ignored", "invalid")
PUSH_ERROR_REASONS = ("access_denied", "not_found", "throttled", "unavailable", "error")


class Metrics:
    """Every ``secretsync_*`` metric, registered on ``registry`` (a fresh one by default),
    plus the standard ``process_*`` and ``python_*`` collectors (the default global
    registry has those already, so they are not added to it twice).
    """

    registry: CollectorRegistry
    aws_requests: Counter
    secret_changes: Counter
    file_writes: Counter
    sync_errors: Counter
    notify: Counter
    last_success: Gauge
    poll_duration: Histogram
    ready: Gauge
    fresh: Gauge
    build_info: Gauge
    drift_repairs: Counter
    config_reloads: Counter
    task_restarts: Counter
    secret_version: Gauge
    output_applied: Gauge
    failover_active: Gauge
    push_messages: Counter
    push_errors: Counter
    push_last_message: Gauge

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import (  # noqa: PLC0415 (see the module docstring)
            REGISTRY,
            CollectorRegistry,
            Counter,
            Gauge,
            GCCollector,
            Histogram,
            PlatformCollector,
            ProcessCollector,
        )

        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        if r is not REGISTRY:
            ProcessCollector(registry=r)  # RSS, CPU, open/max fds, start time (Linux /proc)
            PlatformCollector(registry=r)  # python_info
            GCCollector(registry=r)  # python_gc_*
        self._exposed = _WithoutCreated(r)
        self.aws_requests = Counter(
            "secretsync_aws_requests",
            "Secrets Manager HTTP requests, retries included, by the region asked.",
            ["operation", "outcome", "region"],
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
            "secretsync_ready",
            "1 when /readyz answers 200 (by default: every output was written or found "
            "current once since start).",
            registry=r,
        )
        self.fresh = Gauge(
            "secretsync_fresh",
            "1 when every output was confirmed current within metrics.stale_after (/fresh).",
            registry=r,
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
        self.task_restarts = Counter(
            "secretsync_task_restarts",
            "Restarts of a long-lived task after it failed.",
            ["task"],
            registry=r,
        )
        self.secret_version = Gauge(
            "secretsync_secret_version_info",
            "1 for the version of each secret held now (the series of a replaced version goes).",
            ["secret", "version_id"],
            registry=r,
        )
        self.output_applied = Gauge(
            "secretsync_output_applied",
            "1 when the output's current content was delivered ok to every notify target "
            "(or it has none); 0 while a delivery is pending or failed.",
            ["path"],
            registry=r,
        )
        self.failover_active = Gauge(
            "secretsync_failover_active",
            "1 while the last good check of the secret came from the failover region.",
            ["secret"],
            registry=r,
        )
        self.push_messages = Counter(
            "secretsync_push_messages",
            "Push messages (EventBridge/SNS via SQS), by outcome.",
            ["outcome"],
            registry=r,
        )
        self.push_errors = Counter(
            "secretsync_push_errors",
            "Failures to set up, read or tend the push queue, by reason (declared when push is "
            "configured).",
            ["reason"],
            registry=r,
        )
        self.push_last_message = Gauge(
            "secretsync_push_last_message_timestamp_seconds",
            "Unix time the last push message was received (0: none since start).",
            registry=r,
        )
        self.build_info.labels(version=__version__).set(1)
        for outcome in PUSH_OUTCOMES:
            self.push_messages.labels(outcome=outcome)
        for outcome in ("ok", "error"):
            self.config_reloads.labels(outcome=outcome)

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

    def forget(
        self, *, paths: Iterable[str] = (), secrets: Iterable[str] = (), targets: Iterable[str] = ()
    ) -> None:
        """Remove every series of outputs, secrets and targets no longer configured.

        After a reload that removes an output, its staleness gauge would otherwise
        stay and ``SecretsyncOutputStale`` would fire for a file that is
        deliberately no longer managed.
        """
        for path in paths:
            for metric in (
                self.file_writes,
                self.drift_repairs,
                self.last_success,
                self.sync_errors,
                self.output_applied,
            ):
                metric.remove_by_labels({"path": path})
        for secret in secrets:
            self.secret_changes.remove_by_labels({"secret": secret})
            self.secret_version.remove_by_labels({"secret": secret})
            self.failover_active.remove_by_labels({"secret": secret})
        for target in targets:
            self.notify.remove_by_labels({"target": target})

    def declare_push(self) -> None:
        """Create the push error series at zero (push is configured), so the first counts."""
        for reason in PUSH_ERROR_REASONS:
            self.push_errors.labels(reason=reason)

    def hold_version(self, secret: str, version_id: str, previous: str | None) -> None:
        """``secret`` is now held at ``version_id``: its info series moves to that version."""
        if previous is not None and previous != version_id:
            self.secret_version.remove_by_labels({"secret": secret, "version_id": previous})
        self.secret_version.labels(secret=secret, version_id=version_id).set(1)

    def declare_regions(self, regions: Iterable[str]) -> None:
        """Create the request series of the regions asked (primary, failover) at zero."""
        for region in regions:
            for operation in AWS_OPERATIONS:
                for outcome in AWS_OUTCOMES:
                    self.aws_requests.labels(operation=operation, outcome=outcome, region=region)

    def request_observer(self, region: str) -> Callable[[str, str], None]:
        """An observer for the client of ``region``: counts each real HTTP attempt."""
        self.declare_regions([region])

        def observe(operation: str, outcome: str) -> None:
            self.aws_requests.labels(operation=operation, outcome=outcome, region=region).inc()

        return observe

    def content_type(self, accept: str) -> str:
        """The content type :meth:`exposition` answers ``accept`` with (no collection)."""
        from prometheus_client.exposition import choose_encoder  # noqa: PLC0415

        return str(choose_encoder(accept)[1])

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """(body, content type) of a scrape: OpenMetrics when ``accept`` asks for it, else
        the Prometheus text format; counters and histograms lose their ``*_created``.
        Safe to call from another thread (prometheus_client collects under its locks)."""
        from prometheus_client.exposition import choose_encoder  # noqa: PLC0415

        encoder, content_type = choose_encoder(accept)
        return encoder(self._exposed), content_type


class _Null:
    """A metric that counts nothing: every label set is itself, every update a no-op."""

    __slots__ = ()

    def labels(self, *_args: object, **_labels: object) -> _Null:
        return self

    def _nothing(self, *_args: object, **_kwargs: object) -> None:
        return None

    inc = set = observe = remove_by_labels = remove = _nothing


class NullMetrics(Metrics):
    """Metrics that go nowhere (``once``: nothing scrapes them); prometheus_client is not
    imported. :meth:`exposition` is not available."""

    def __init__(self) -> None:  # no super().__init__(): no registry, that is the point
        null: Any = _Null()
        for name in Metrics.__annotations__:
            if name != "registry":
                setattr(self, name, null)

    def __repr__(self) -> str:
        return "NullMetrics()"

    def content_type(self, accept: str) -> str:
        raise RuntimeError("NullMetrics has no exposition")

    def exposition(self, accept: str) -> tuple[bytes, str]:
        raise RuntimeError("NullMetrics has no exposition")


class _WithoutCreated:
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
