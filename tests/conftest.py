"""Fixtures shared by every test, and the hooks that sort tests into tiers.

Fixtures: a real moto server over HTTP (one per test process, emptied before each
test), a fault proxy, a JDK reader, the daemon as a child process, in-process rigs.
Every AWS call in the tests goes to 127.0.0.1: the environment is isolated once
here (tests/support/testenv.py) and inherited by every daemon a test starts.

Tiers: a test that starts a subprocess, a JVM or a server is marked ``slow`` —
automatically when it uses one of SLOW_FIXTURES or lives in tests/e2e/, by hand
otherwise. ``make test-fast`` runs the others (``-m "not slow"``). In every run an
unmarked test that starts a subprocess or binds a TCP/UDP port fails
(tests/support/guard.py), so the fast tier cannot grow slow tests silently.
"""

from __future__ import annotations

import io
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from secretsync import logs
from tests.support import guard, testenv
from tests.support.daemon import Daemon
from tests.support.faultproxy import FaultProxy
from tests.support.harness import rig
from tests.support.inproc import run_inproc  # noqa: F401 (the fixture, for every test module)
from tests.support.java import JavaProperties, compile_reader
from tests.support.motoserver import Moto, moto_server, reset

testenv.isolate()
guard.install()

TESTS = Path(__file__).resolve().parent

# a test using one of these starts a subprocess, a JVM or a server (directly or through
# the fixtures it depends on: pytest lists those too)
SLOW_FIXTURES = frozenset(
    {
        "moto_url",  # moto's server subprocess
        "java",  # javac, then a JVM per read
        "start_daemon",  # `secretsync run` child processes
        "kafka_broker",  # a JVM broker
        "java_programs",  # JVM clients
    }
)

# tests sharing a JVM broker run in one xdist worker, so only one broker runs at a time
BROKER_FIXTURES = frozenset({"kafka_broker"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: starts a subprocess, a JVM or a server (left out by `make test-fast`); "
        "set automatically from the fixtures a test uses and for tests/e2e/",
    )


@pytest.hookimpl(tryfirst=True)  # before -m deselects and xdist groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    e2e = TESTS / "e2e"
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & SLOW_FIXTURES or item.path.is_relative_to(e2e):
            item.add_marker(pytest.mark.slow)
        if names & BROKER_FIXTURES:
            item.add_marker(pytest.mark.xdist_group("kafka_broker"))


def _watched(item: pytest.Item) -> Generator[None, object, object]:
    if item.get_closest_marker("slow") is not None:
        return (yield)
    guard.watch(item.nodeid)
    try:
        result = yield
    finally:
        violations = guard.done()
    if violations:
        pytest.fail("\n".join(violations), pytrace=False)
    return result


# setup and call, not teardown: a wider-scoped fixture may finish (stop its server)
# in the teardown of whichever test ran last
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _watched(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _watched(item))


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One moto server per test process (each xdist worker has its own)."""
    with moto_server() as url:
        yield url


@pytest.fixture
def moto(moto_url: str) -> Moto:
    """The emulator, emptied (``/moto-api/reset``) for this test."""
    reset(moto_url)
    return Moto(moto_url)


@pytest.fixture
def proxy(moto: Moto) -> Iterator[FaultProxy]:
    p = FaultProxy(moto.url).start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    """Send the package's JSON logs (debug and up) to a buffer for the test's duration."""
    buffer = io.StringIO()
    logs.configure("debug", "json", stream=buffer)
    try:
        yield buffer
    finally:
        structlog.reset_defaults()


@pytest.fixture(scope="session")
def java(tmp_path_factory: pytest.TempPathFactory) -> JavaProperties:
    return compile_reader(tmp_path_factory.mktemp("java"))


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Any]:
    """``start_daemon(config, *args, **kwargs)``: a :class:`Daemon`, killed at teardown."""
    started: list[Daemon] = []

    def start(config: Path, *args: str, **kwargs: Any) -> Daemon:
        d = Daemon(config, tmp_path / f"daemon-{len(started)}.log", *args, **kwargs)
        started.append(d)
        return d

    yield start
    for d in started:
        d.close()


@pytest.fixture
def make_rig() -> Iterator[Any]:
    """``make_rig(config, store, **kwargs)``: a syncer with a real writer; locks released after."""
    made: list[Any] = []

    def make(*args: Any, **kwargs: Any) -> Any:
        r = rig(*args, **kwargs)
        made.append(r)
        return r

    yield make
    for r in made:
        r.writer.close()
