"""Prometheus metrics of the contract, over an injected CollectorRegistry.

This is the only module that imports prometheus_client. Label values are
bounded: secret ids and paths come from the config, operations from botocore,
outcomes and reasons from fixed words. No label ever carries a secret value.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from secretsync import __version__


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

    def __repr__(self) -> str:
        return f"Metrics(registry={self.registry!r})"

    def observe_request(self, operation: str, outcome: str) -> None:
        """Count one real Secrets Manager HTTP attempt (hooked into the botocore client)."""
        self.aws_requests.labels(operation=operation, outcome=outcome).inc()
