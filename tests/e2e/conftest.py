"""Fixtures of the end-to-end tests: one real Kafka broker for the session, Java clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.kafka import REAUTH_MS, Broker, JavaProgram, running_broker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A single-node KRaft broker shared by the session (each test uses its own topics,
    keys and users); stopped however the session ends."""
    with running_broker(tmp_path_factory.mktemp("kafka"), reauth_ms=REAUTH_MS) as broker:
        yield broker


@pytest.fixture
def java_programs(tmp_path: Path) -> Iterator[Any]:
    """``java_programs(cls, *args)``: a :class:`JavaProgram` (or :class:`Probe`) in the
    test's directory, killed with its process group when the test ends."""
    started: list[JavaProgram] = []

    def start(cls: type[JavaProgram], *args: Any, **kwargs: Any) -> Any:
        program = cls(tmp_path, *args, **kwargs)
        started.append(program)
        return program

    yield start
    for program in started:
        program.close()
