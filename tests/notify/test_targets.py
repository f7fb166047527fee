"""Telling one target: real signals to real processes, real commands, a real HTTP server.

Each test calls :mod:`secretsync.notify.targets` directly and checks the Result;
batching, logging and counting are the notifier's (tests/notify/test_notifier.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secretsync.config.model import NotifyTarget
from secretsync.notify import targets
from tests.support.apps import NOTIFY_CMD, Apps, is_dead, kill_recorded
from tests.support.hookserver import HookServer
from tests.support.hostile import BAD_PIDFILES, CUBIC, LongCmdline, bad_pidfile, java_flood
from tests.support.motoserver import free_port
from tests.support.namespaces import without_temp_dirs
from tests.support.ticker import Ticker
from tests.support.wait import async_wait_until

PY = sys.executable
OWN_PID = os.getpid()
NOBODY = r"no-such-process-[0-9a-f]{32}"  # a `process` guard that matches nothing


def target(**data: Any) -> NotifyTarget:
    return NotifyTarget.model_validate(data)


async def send(**data: Any) -> targets.Result:
    return await targets.send_signal(target(**data), own_pid=OWN_PID)


async def send_within(scan_timeout_s: float, **data: Any) -> targets.Result:
    """:func:`send` with a process scan budget of ``scan_timeout_s`` (the daemon's is
    procs.SCAN_TIMEOUT_S): the budget tests wait it out, so a short one keeps them short."""
    return await targets.send_signal(target(**data), own_pid=OWN_PID, scan_timeout_s=scan_timeout_s)


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[Apps]:
    started = Apps(tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def hang_pids(tmp_path: Path) -> Iterator[Path]:
    """Where a `hang`/`detach` command writes its pids; anything left running is killed."""
    path = tmp_path / "hang.pids"
    yield path
    kill_recorded(path)


# -- signals -----------------------------------------------------------------------------


@pytest.mark.slow
async def test_process_regex_signals_every_matching_process_and_a_miss_is_not_running(
    apps: Apps,
) -> None:
    first, clone, other = apps("regex-app"), apps("clone"), apps("other-app")
    regex = rf"recorder\.py .* ({first.tag}|{clone.tag})( |$)"

    sent = await send(signal="SIGUSR1", process=regex)

    assert (sent.outcome, sent.details["signal"]) == ("ok", "SIGUSR1")
    assert sorted(sent.details["pids"]) == sorted([first.pid, clone.pid])
    assert [r["signal"] for r in first.barrier()] == ["SIGUSR1"]
    assert [r["signal"] for r in clone.barrier()] == ["SIGUSR1"]
    assert other.barrier() == []
    missed = await send(signal="SIGUSR1", process=NOBODY)
    assert (missed.outcome, missed.reason) == ("not_running", "no process matches `process`")


@pytest.mark.slow
async def test_pidfile_with_process_guard_leaves_a_recycled_or_stale_pid_alone(
    tmp_path: Path, apps: Apps
) -> None:
    app = apps("kafka-app")
    impostor = apps("impostor")  # holds the pid the pidfile names, but is not the app
    pidfile = tmp_path / "app.pid"
    data = {"signal": "SIGHUP", "pidfile": str(pidfile), "process": app.regex}

    pidfile.write_text(f"{impostor.pid}\n")  # a recycled pid
    recycled = await send(**data)
    assert recycled.outcome == "not_running"
    assert recycled.reason is not None and "does not match `process`" in recycled.reason
    assert impostor.barrier() == []

    gone = subprocess.Popen([PY, "-c", "pass"])
    gone.wait()
    pidfile.write_text(f"{gone.pid}\n")  # a stale pidfile: that process has exited
    stale = await send(**data)
    assert (stale.outcome, stale.reason) == ("not_running", f"no process with pid {gone.pid}")

    pidfile.write_text(f"  {app.pid}  \n")
    good = await send(**data)
    assert (good.outcome, good.details["pids"]) == ("ok", [app.pid])
    assert [r["signal"] for r in app.barrier()] == ["SIGHUP"]
    assert impostor.barrier() == []


async def test_pid_1_and_our_own_pid_are_refused_without_a_signal(tmp_path: Path) -> None:
    init_pidfile, own_pidfile = tmp_path / "init.pid", tmp_path / "own.pid"
    init_pidfile.write_text("1\n")
    own_pidfile.write_text(f"{OWN_PID}\n")
    received: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGUSR1, signal.SIGUSR2)}
    try:
        # SIGWINCH for pid 1: harmless even if a broken guard let it through
        init = await send(signal="SIGWINCH", pidfile=str(init_pidfile))
        own = await send(signal="SIGUSR1", pidfile=str(own_pidfile))
        os.kill(OWN_PID, signal.SIGUSR2)  # barrier: USR1 (10) would be handled first
        await async_wait_until(lambda: received, 5, "the barrier signal")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    assert received == ["SIGUSR2"]
    assert (init.outcome, init.reason, init.details["pid"]) == (
        "refused",
        "refusing to signal PID 1 (init)",
        1,
    )
    assert (own.outcome, own.reason) == ("refused", "refusing to signal secretsync's own pid")


async def test_a_missing_pidfile_is_not_running(tmp_path: Path) -> None:
    result = await send(pidfile=str(tmp_path / "not-yet.pid"))
    assert (result.outcome, result.reason) == ("not_running", "pidfile does not exist")


@pytest.mark.parametrize(
    "kind", ["fifo", "symlink to ns_last_pid", "sysfs file", "above pid_max", "directory"]
)
async def test_a_bad_pidfile_is_an_error_and_nothing_is_signalled(
    kind: str, tmp_path: Path
) -> None:
    with bad_pidfile(kind, tmp_path) as pidfile:
        # the guard matches nothing: even a broken pidfile check signals nobody
        result = await asyncio.wait_for(
            send(signal="SIGWINCH", pidfile=str(pidfile), process=NOBODY), 10
        )
    assert result.outcome == "error"
    assert result.reason is not None and result.reason.startswith("bad pidfile: ")
    assert BAD_PIDFILES[kind].reason in result.reason
    assert "pid" not in result.details


@pytest.mark.slow
async def test_a_hostile_command_line_is_an_error_within_the_scan_budget() -> None:
    with LongCmdline(java_flood()) as hostile:
        assert hostile.cmdline_bytes() > 400_000
        async with Ticker() as ticker:
            result = await asyncio.wait_for(send_within(1.5, signal="SIGWINCH", process=CUBIC), 15)
    assert ticker.ticks >= 20  # the event loop was never held by the match
    assert (result.outcome, result.reason) == (
        "error",
        "process scan exceeded its time budget (1.5s)",
    )
    assert "pids" not in result.details


@pytest.mark.slow
async def test_a_hostile_command_line_behind_a_pidfile_is_bounded_too(tmp_path: Path) -> None:
    pidfile = tmp_path / "app.pid"
    with LongCmdline(java_flood()) as hostile:
        pidfile.write_text(f"{hostile.pid}\n")
        async with Ticker() as ticker:
            result = await asyncio.wait_for(
                send_within(1.5, signal="SIGWINCH", pidfile=str(pidfile), process=CUBIC),
                15,
            )
    assert ticker.ticks >= 20
    assert (result.outcome, result.reason) == (
        "error",
        "process scan exceeded its time budget (1.5s)",
    )


@pytest.mark.slow
async def test_a_long_command_line_matching_in_its_first_64_KiB_is_signalled() -> None:
    tag = f"KafkaApp-{os.urandom(6).hex()}"
    with LongCmdline([tag, "-Dfiller=" + "x" * 100_000]) as app:
        # SIGWINCH: ignored by the paused child, so it lives on to be checked
        result = await send(signal="SIGWINCH", process=rf"{tag} -Dfiller=x+")
        assert app.proc is not None and app.proc.poll() is None
    assert (result.outcome, result.details["pids"]) == ("ok", [app.pid])


# -- commands ----------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_command_runs_without_a_shell_with_the_changed_files_in_its_environment(
    tmp_path: Path,
) -> None:
    rec = tmp_path / "rec.jsonl"
    argv = [PY, str(NOTIFY_CMD), "record", str(rec), "$HOME; echo hi", "*"]

    result = await targets.run_command("reload", target(command=argv), ["/a", "/b"])

    assert (result.outcome, result.details["exit_code"]) == ("ok", 0)
    assert result.details["command"] == PY
    lines = [json.loads(line) for line in rec.read_text().splitlines()]
    assert lines == [{"argv": ["$HOME; echo hi", "*"], "changed": "/a:/b", "target": "reload"}]


@pytest.mark.slow
async def test_a_failing_command_is_a_retryable_error_with_its_output(tmp_path: Path) -> None:
    fails = tmp_path / "fails.txt"
    argv = [PY, str(NOTIFY_CMD), "fail", "3", "4", str(fails)]
    result = await targets.run_command("exit3", target(command=argv), [])
    assert (result.outcome, result.reason, result.retryable) == ("error", "exit code 3", True)
    assert result.details["exit_code"] == 3
    # stdout and stderr both captured, in one stream
    assert "failing on purpose, line 0" in result.details["output"]
    assert "failing on purpose, line 3" in result.details["output"]
    assert "output_truncated" not in result.details


@pytest.mark.slow
async def test_a_missing_executable_is_an_error(tmp_path: Path) -> None:
    result = await targets.run_command("x", target(command=[str(tmp_path / "nope")]), [])
    assert (result.outcome, result.reason) == ("error", "executable not found")


@pytest.mark.slow
async def test_a_hanging_command_times_out_and_its_process_group_is_killed(
    hang_pids: Path,
) -> None:
    argv = [PY, str(NOTIFY_CMD), "hang", str(hang_pids)]
    result = await asyncio.wait_for(
        targets.run_command("hang", target(command=argv, timeout="1500ms"), []), 30
    )
    assert (result.outcome, result.retryable) == ("timeout", True)
    assert result.reason == "no exit within 1.5s; process group killed"
    leader, grandchild = map(int, hang_pids.read_text().split())
    await async_wait_until(
        lambda: is_dead(leader) and is_dead(grandchild), 10, "the process group to die"
    )


@pytest.mark.slow
async def test_cancelling_a_command_kills_its_process_group(hang_pids: Path) -> None:
    argv = [PY, str(NOTIFY_CMD), "hang", str(hang_pids)]
    task = asyncio.create_task(targets.run_command("hang", target(command=argv), []))
    await async_wait_until(hang_pids.exists, 10, "the hanging command to start")
    leader, grandchild = map(int, hang_pids.read_text().split())

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)

    assert is_dead(leader)
    await async_wait_until(lambda: is_dead(grandchild), 5, "the grandchild to die")


@pytest.mark.slow
async def test_a_megabyte_of_output_is_drained_and_truncated_to_2_KiB() -> None:
    code = "import sys\nsys.stdout.write('x' * 1048576 + 'END')\nsys.stdout.flush()"
    result = await asyncio.wait_for(
        targets.run_command("chatty", target(command=[PY, "-c", code], timeout="60s"), []),
        30,
    )
    assert (result.outcome, result.details["exit_code"]) == ("ok", 0)
    assert result.details["output"] == "x" * targets.OUTPUT_LIMIT_BYTES
    assert targets.OUTPUT_LIMIT_BYTES == 2048
    assert result.details["output_truncated"] is True


@pytest.mark.slow
async def test_a_grandchild_holding_the_output_open_does_not_hold_us_up(
    hang_pids: Path,
) -> None:
    argv = [PY, str(NOTIFY_CMD), "detach", str(hang_pids)]
    result = await asyncio.wait_for(
        # the timeout is far beyond the bounded wait: returning means "not waiting for EOF"
        targets.run_command("detach", target(command=argv, timeout="120s"), []),
        20,
    )
    assert (result.outcome, result.details["exit_code"]) == ("ok", 0)
    assert result.details["output"] == "leader done, grandchild left running"
    _leader, grandchild = map(int, hang_pids.read_text().split())
    assert not is_dead(grandchild)  # it still holds the write end: no EOF was possible


@pytest.mark.slow
def test_command_output_is_captured_with_no_usable_temp_dir(tmp_path: Path) -> None:
    script = (
        "import asyncio, json, sys, tempfile\n"
        "from secretsync.notify import targets\n"
        "from secretsync.config.model import NotifyTarget\n"
        "try:\n"
        "    tempfile.TemporaryFile().close()\n"
        "    usable = True\n"
        "except OSError:\n"
        "    usable = False\n"
        "cmd = [sys.executable, '-c', "
        "\"import sys; print('reloaded', flush=True); print('warned', file=sys.stderr)\"]\n"
        "target = NotifyTarget.model_validate({'command': cmd})\n"
        "try:\n"
        "    r = asyncio.run(targets.run_command('ro', target, ['/etc/app.properties']))\n"
        "    out = {'outcome': r.outcome, 'reason': r.reason, 'details': r.details}\n"
        "except Exception as exc:\n"
        "    out = {'outcome': 'raised ' + type(exc).__name__}\n"
        "out['tempfile_usable'] = usable\n"
        "print(json.dumps(out))\n"
    )
    argv, env = without_temp_dirs([PY, "-c", script])
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["tempfile_usable"] is False  # the environment really is hostile
    assert out["outcome"] == "ok", out
    assert out["reason"] is None
    assert out["details"]["output"] == "reloaded\nwarned"
    assert out["details"]["exit_code"] == 0


# -- HTTP --------------------------------------------------------------------------------


@pytest.mark.slow
async def test_http_2xx_is_ok_and_another_status_a_retryable_error_with_a_snippet() -> None:
    async with HookServer() as server:
        ok = await targets.call_http(
            "ok",
            target(http={"url": f"{server.url}/ok", "headers": {"X-Token": "t0k3n-value"}}),
            ["/a"],
            initial=False,
        )
        failed = await targets.call_http(
            "fail", target(http={"url": f"{server.url}/fail", "method": "PUT"}), [], initial=False
        )
    assert (ok.outcome, ok.details) == ("ok", {"method": "POST", "status": 204})
    assert server.calls("/ok") == [
        {
            "path": "/ok",
            "method": "POST",
            "token": "t0k3n-value",
            "body": {"target": "ok", "changed_files": ["/a"]},
        }
    ]
    assert (failed.outcome, failed.reason, failed.retryable) == ("error", "HTTP status 500", True)
    assert failed.details == {"method": "PUT", "status": 500, "body": "reload failed"}


@pytest.mark.slow
async def test_a_refused_connection_is_not_running_at_start_up_and_an_error_later() -> None:
    hook = target(http={"url": f"http://127.0.0.1:{free_port()}/reload", "timeout": "5s"})
    early = await targets.call_http("app", hook, [], initial=True)
    later = await targets.call_http("app", hook, [], initial=False)
    assert (early.outcome, early.reason) == ("not_running", "connection refused")
    assert (later.outcome, later.reason, later.retryable) == ("error", "connection refused", True)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.slow
async def test_a_redirect_is_an_error_and_is_not_followed(status: int) -> None:
    # a 3xx must not carry the token and the body elsewhere (another host, another path)
    async with HookServer() as elsewhere, HookServer() as server:
        port = elsewhere.url.rpartition(":")[2]
        hook = target(
            http={"url": f"{server.url}/moved/{status}/{port}", "headers": {"X-Token": "t0k3n"}}
        )
        same_host = target(http={"url": f"{server.url}/moved/{status}"})
        result = await targets.call_http("app", hook, ["/a"], initial=False)
        local = await targets.call_http("app", same_host, ["/a"], initial=False)
    assert elsewhere.requests == []
    assert server.calls("/ok") == []
    for got in (result, local):
        assert (got.outcome, got.retryable) == ("error", True)
        assert got.reason == f"HTTP status {status} (redirects are not followed)"
        assert got.details["status"] == status
    assert "location" not in json.dumps(result.details).lower()  # the URL may hold a token
