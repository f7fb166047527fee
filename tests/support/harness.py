"""Build the syncer's collaborators for in-process tests: config, writer, metrics, store."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secretsync.config.model import Config, parse_config
from secretsync.metrics import Metrics
from secretsync.output.writer import OutputWriter
from secretsync.sync.syncer import NotifySink, Syncer
from tests.support.configs import example_config
from tests.support.memsource import MemorySource
from tests.support.seeds import KAFKA_ID, SR_ID, kafka_secret, sr_secret

NOWHERE = "http://127.0.0.1:9"  # an endpoint no test talks to (the store is in memory)


class UpperBound(random.Random):
    """Full jitter at its maximum, so backoff delays are predictable."""

    def uniform(self, a: float, b: float) -> float:
        return b


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def config_data(out: Path, **overrides: Any) -> dict[str, Any]:
    """sync.yaml.example as a mapping, outputs under ``out`` (edit, then :func:`parse_config`)."""
    return example_config(out, NOWHERE, **overrides)


def make_config(out: Path, **overrides: Any) -> Config:
    return parse_config(config_data(out, **overrides))


def seeded_source() -> MemorySource:
    store = MemorySource()
    store.put(KAFKA_ID, kafka_secret())
    store.put(SR_ID, sr_secret())
    return store


@dataclass
class Rig:
    syncer: Syncer
    writer: OutputWriter
    metrics: Metrics
    source: MemorySource

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


def rig(
    config: Config,
    store: MemorySource,
    *,
    notifier: NotifySink | None = None,
    **kwargs: Any,
) -> Rig:
    """A syncer wired to a real writer (locks, temp files, fsync) and a fresh registry."""
    metrics = Metrics()
    writer = OutputWriter(metrics)
    syncer = Syncer(config, store, writer, metrics=metrics, notifier=notifier, **kwargs)
    writer.manage([o.path for o in config.outputs])
    return Rig(syncer, writer, metrics, store)
