"""tests/support/motoserver.py: the moto server of a test run never outlives the run."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.support.motoserver import answers
from tests.support.proctree import Proc, children
from tests.support.wait import wait_until

# a stand-in for a test session: starts moto, says where, then waits to be killed
SESSION = (
    "import signal\n"
    "from tests.support.motoserver import moto_server\n"
    "with moto_server() as url:\n"
    "    print(url, flush=True)\n"
    "    signal.pause()  # until the test kills it\n"
)


@pytest.mark.slow
def test_moto_dies_with_a_test_run_that_is_killed_with_sigkill() -> None:
    # no finally can run in a SIGKILLed pytest (a CI timeout, the OOM killer): moto
    # must go with it or it keeps a port and 100 MB until the machine is recycled
    session = subprocess.Popen([sys.executable, "-c", SESSION], stdout=subprocess.PIPE, text=True)
    moto: list[Proc] = []
    try:
        assert session.stdout is not None
        url = session.stdout.readline().strip()
        assert answers(url)
        moto = [Proc.of(pid) for pid in children(session.pid)]
        assert len(moto) == 1
        session.send_signal(signal.SIGKILL)
        session.wait(timeout=10)
        wait_until(lambda: not moto[0].running(), 10, "moto to die with its session")
        assert not answers(url)
    finally:
        for proc in moto:
            proc.kill()
        if session.poll() is None:
            session.kill()
            session.wait(timeout=10)
