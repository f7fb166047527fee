"""The metrics table of the design contract, shared by the metrics and monitoring tests."""

from __future__ import annotations

# family name (as prometheus_client's parser names it) → (type, label names)
CONTRACT: dict[str, tuple[str, frozenset[str]]] = {
    "secretsync_aws_requests": ("counter", frozenset({"operation", "outcome", "region"})),
    "secretsync_secret_changes": ("counter", frozenset({"secret"})),
    "secretsync_file_writes": ("counter", frozenset({"path"})),
    "secretsync_sync_errors": ("counter", frozenset({"path", "reason"})),
    "secretsync_notify": ("counter", frozenset({"target", "outcome"})),
    "secretsync_last_success_timestamp_seconds": ("gauge", frozenset({"path"})),
    "secretsync_poll_duration_seconds": ("histogram", frozenset()),
    "secretsync_ready": ("gauge", frozenset()),
    "secretsync_fresh": ("gauge", frozenset()),
    "secretsync_build_info": ("gauge", frozenset({"version"})),
    "secretsync_drift_repairs": ("counter", frozenset({"path"})),
    "secretsync_config_reloads": ("counter", frozenset({"outcome"})),
    "secretsync_task_restarts": ("counter", frozenset({"task"})),
    "secretsync_secret_version_info": ("gauge", frozenset({"secret", "version_id"})),
    "secretsync_output_applied": ("gauge", frozenset({"path"})),
    "secretsync_push_messages": ("counter", frozenset({"outcome"})),
    "secretsync_push_errors": ("counter", frozenset({"reason"})),
    "secretsync_push_last_message_timestamp_seconds": ("gauge", frozenset()),
    "secretsync_failover_active": ("gauge", frozenset({"secret"})),
}

# The standard collectors of prometheus_client next to the contract: ``process_*``
# (ProcessCollector) and ``python_*`` (PlatformCollector, GCCollector). Their exact
# set depends on the platform and the library version, so a scrape may carry any
# family with these prefixes; these are the ones dashboards rely on.
STANDARD_PREFIXES = ("process_", "python_")
STANDARD: dict[str, str] = {
    "process_resident_memory_bytes": "gauge",
    "process_virtual_memory_bytes": "gauge",
    "process_cpu_seconds": "counter",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_start_time_seconds": "gauge",
    "python_info": "gauge",
    "python_gc_collections": "counter",
}


def is_standard(family: str) -> bool:
    """True for a family of the standard collectors (``process_*``, ``python_*``)."""
    return family.startswith(STANDARD_PREFIXES)


_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def exposed_names() -> dict[str, str]:
    """Every series name a scrape can carry (``_total``, ``_bucket``, …) → its type."""
    return {
        family + suffix: kind
        for family, (kind, _labels) in CONTRACT.items()
        for suffix in _SUFFIXES[kind]
    }


def contract_name(family: str) -> str:
    """The name as written in the contract table (counters with ``_total``)."""
    kind = CONTRACT[family][0]
    return family + "_total" if kind == "counter" else family
