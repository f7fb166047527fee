"""Telling dependent processes: real child processes, real signals, real HTTP.

The first group drives the whole daemon (``secretsync run`` as a child process)
against moto; the second drives :class:`Notifier` in this process with real
targets, so each outcome can be checked in the log and the metrics.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from secretsync import logs
from secretsync.config.model import Config, parse_config
from secretsync.metrics import Metrics
from secretsync.notify.notifier import Notifier
from secretsync.state import WrittenFile
from tests.support.apps import NOTIFY_CMD, App, is_dead, kill_recorded
from tests.support.configs import example_config, write_yaml
from tests.support.daemon import Daemon, run_cli
from tests.support.hookserver import HookServer
from tests.support.motoserver import Moto, free_port
from tests.support.seeds import (
    CANARY_PASSWORD,
    CANARY_SR_SECRET,
    KAFKA_ID,
    REGION,
    SR_ID,
    kafka_secret,
    sr_secret,
)
from tests.support.wait import async_wait_until, wait_until

PY = sys.executable


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[Callable[..., App]]:
    started: list[App] = []

    def start(name: str, files: list[Path] | tuple[Path, ...] = ()) -> App:
        app = App(tmp_path, name, files)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


@pytest.fixture
def hang_pids(tmp_path: Path) -> Iterator[Path]:
    """Where a `hang` command writes its pids; anything left running is killed at the end."""
    path = tmp_path / "hang.pids"
    yield path
    kill_recorded(path)


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def index_of(events: list[dict[str, Any]], name: str, nth: int = 0, **fields: Any) -> int:
    """Index of the ``nth`` event called ``name`` with ``fields``; -1 if there is none."""
    hits = [
        i
        for i, e in enumerate(events)
        if e.get("event") == name and all(e.get(k) == v for k, v in fields.items())
    ]
    return hits[nth] if len(hits) > nth else -1


# -- the whole daemon --------------------------------------------------------------------


def test_rotating_both_secrets_within_settle_tells_each_target_once_with_both_new_values(
    moto: Moto, tmp_path: Path, apps: Callable[..., App], start_daemon: Any
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    kafka_file = out / "client.properties"
    sr_file = out / "schema-registry.properties"
    combined = out / "combined.properties"
    watched = [kafka_file, sr_file, combined]
    hup_app = apps("hup-app", watched)  # pidfile target, SIGHUP
    usr1_app = apps("usr1-app", watched)  # process regex target, SIGUSR1
    data = example_config(
        out, moto.url, poll={"interval": "200ms", "jitter": 0}, settle="2s", settle_max="20s"
    )
    data["notify"] = {
        "hup-app": {"signal": "SIGHUP", "pidfile": str(hup_app.pidfile)},
        "usr1-app": {"signal": "SIGUSR1", "process": usr1_app.regex},
    }
    data["outputs"][0]["notify"] = ["hup-app", "usr1-app"]
    data["outputs"][1]["notify"] = ["hup-app", "usr1-app"]
    data["outputs"][2]["notify"] = ["hup-app"]
    daemon: Daemon = start_daemon(write_yaml(tmp_path / "sync.yaml", data))

    # start-up: the apps already run, so each is told once about the first write
    wait_until(lambda: len(hup_app.signals()) == 1, 20, "the start-up SIGHUP")
    wait_until(lambda: len(usr1_app.signals()) == 1, 20, "the start-up SIGUSR1")

    # two rotations, picked up by two different passes, both within `settle`
    moto.rotate(KAFKA_ID, kafka_secret(password="ROTATED-kafka-2"))
    wait_until(lambda: "ROTATED-kafka-2" in kafka_file.read_text(), 20, "the new Kafka file")
    moto.rotate(SR_ID, sr_secret(secret="ROTATED-sr-2"))

    wait_until(lambda: len(hup_app.signals()) == 2, 20, "the SIGHUP for the rotation")
    wait_until(lambda: len(usr1_app.signals()) == 2, 20, "the SIGUSR1 for the rotation")
    wait_until(lambda: daemon.has_event("notify_sent", target="usr1-app"), 10, "the notify log")
    events = daemon.events()
    batch = index_of(events, "notify_batch", nth=1)
    assert batch > 0
    assert events[batch]["files"] == sorted(map(str, watched))
    # nothing is written after that batch, so nothing is pending: no further signal can come
    wait_until(
        lambda: sum(e.get("event") == "poll_cycle" for e in daemon.events()[batch:]) > 5,
        20,
        "more unchanged cycles",
    )
    events = daemon.events()
    assert index_of(events[batch:], "file_written") == -1
    assert sum(e.get("event") == "notify_batch" for e in events) == 2

    for app, signame in ((hup_app, "SIGHUP"), (usr1_app, "SIGUSR1")):
        got = app.barrier()
        assert [r["signal"] for r in got] == [signame, signame]
        startup, rotation = (r["files"] for r in got)
        assert CANARY_PASSWORD.split('"')[0] in startup[str(kafka_file)]
        # at the moment of the signal both files (and the combined one) hold the new values
        assert "ROTATED-kafka-2" in rotation[str(kafka_file)]
        assert "ROTATED-sr-2" in rotation[str(sr_file)]
        assert "ROTATED-kafka-2" in rotation[str(combined)]
        assert "ROTATED-sr-2" in rotation[str(combined)]

    assert daemon.proc.poll() is None
    assert daemon.stop() < 5
    log = daemon.log_path.read_text()
    for canary in (CANARY_PASSWORD, CANARY_SR_SECRET, "ROTATED-kafka-2", "ROTATED-sr-2"):
        assert canary not in log
    assert "Traceback" not in log


def test_no_target_is_told_while_nothing_changes(
    moto: Moto, tmp_path: Path, apps: Callable[..., App], start_daemon: Any
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    app = apps("quiet-app")
    data = example_config(out, moto.url, poll={"interval": "100ms", "jitter": 0}, settle=0)
    data["notify"] = {"app": {"pidfile": str(app.pidfile)}}
    for output in data["outputs"]:
        output["notify"] = ["app"]
    daemon: Daemon = start_daemon(write_yaml(tmp_path / "sync.yaml", data))

    wait_until(lambda: daemon.has_event("notify_sent", target="app"), 20, "the start-up signal")
    first = index_of(daemon.events(), "notify_sent", target="app")
    wait_until(
        lambda: sum(e.get("event") == "poll_cycle" for e in daemon.events()[first:]) >= 8,
        20,
        "eight unchanged cycles",
    )

    assert [r["signal"] for r in app.barrier()] == ["SIGHUP"]
    events = daemon.events()
    assert sum(e.get("event") == "notify_batch" for e in events) == 1
    assert all(e.get("files_written") == 0 for e in events[first:] if e["event"] == "poll_cycle")


def test_a_flapping_secret_is_still_notified_within_settle_max(
    moto: Moto, tmp_path: Path, apps: Callable[..., App], start_daemon: Any
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    kafka_file = out / "client.properties"
    app = apps("flap-app", [kafka_file])
    data = example_config(
        out, moto.url, poll={"interval": "100ms", "jitter": 0}, settle="1500ms", settle_max="2500ms"
    )
    data["notify"] = {"app": {"pidfile": str(app.pidfile)}}
    data["outputs"][0]["notify"] = ["app"]
    start_daemon(write_yaml(tmp_path / "sync.yaml", data))
    wait_until(lambda: len(app.signals()) == 1, 20, "the start-up signal")

    # rotate again as soon as each rotation is on disk: never quiet for `settle`
    rotations = 0
    while len(app.signals()) < 2:
        rotations += 1
        assert rotations <= 200, "no notification while the secret kept changing"
        value = f"FLAP-{rotations}"
        moto.rotate(KAFKA_ID, kafka_secret(password=value))
        wait_until(lambda v=value: v in kafka_file.read_text(), 20, "the rotated file")

    assert rotations >= 2  # several passes were coalesced into that one notification
    assert "FLAP-" in app.signals()[1]["files"][str(kafka_file)]


def test_command_failures_never_stop_the_daemon_nor_delay_polls(
    moto: Moto, tmp_path: Path, start_daemon: Any, hang_pids: Path
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    kafka_file = out / "client.properties"
    rec, fails, pids = tmp_path / "good.jsonl", tmp_path / "fails.txt", hang_pids
    data = example_config(out, moto.url, poll={"interval": "200ms", "jitter": 0}, settle=0)
    data["notify"] = {
        "good": {"command": [PY, str(NOTIFY_CMD), "record", str(rec)]},
        "exit3": {"command": [PY, str(NOTIFY_CMD), "fail", "3", "4", str(fails)]},
        "hang": {"command": [PY, str(NOTIFY_CMD), "hang", str(pids)], "timeout": "1500ms"},
        "missing": {"command": [str(tmp_path / "no-such-program")]},
    }
    data["outputs"][0]["notify"] = ["good", "exit3", "hang", "missing"]
    daemon: Daemon = start_daemon(write_yaml(tmp_path / "sync.yaml", data))

    wait_until(
        lambda: daemon.has_event("notify_failed", target="hang", outcome="timeout"),
        20,
        "the hanging command to time out",
    )
    events = daemon.events()
    batch = index_of(events, "notify_batch")
    hang_done = index_of(events, "notify_failed", target="hang")
    # polls went on while the command hung
    assert sum(e.get("event") == "poll_cycle" for e in events[batch:hang_done]) >= 2
    assert index_of(events, "notify_sent", target="good") < hang_done
    leader, grandchild = map(int, pids.read_text().split())
    wait_until(lambda: is_dead(leader) and is_dead(grandchild), 10, "the process group to die")
    exit3 = events[index_of(events, "notify_failed", target="exit3")]
    assert (exit3["outcome"], exit3["exit_code"], exit3["level"]) == ("error", 3, "error")
    assert "failing on purpose, line 3" in exit3["output"]
    missing = events[index_of(events, "notify_failed", target="missing")]
    assert (missing["outcome"], missing["reason"]) == ("error", "executable not found")

    # a later batch still reaches every target
    moto.rotate(KAFKA_ID, kafka_secret(password="ROTATED-cmd-2"))
    wait_until(lambda: len(records(rec)) == 2, 20, "the second run of the good command")
    assert records(rec)[1] == {"argv": [], "changed": str(kafka_file), "target": "good"}
    wait_until(lambda: len(fails.read_text().splitlines()) == 2, 10, "the second exit-3 run")
    wait_until(
        lambda: index_of(daemon.events(), "notify_failed", nth=1, target="hang") > 0,
        20,
        "the second timeout",
    )
    assert daemon.proc.poll() is None
    assert daemon.stop() < 5
    assert daemon.proc.returncode == 0
    log = daemon.log_path.read_text()
    assert "Traceback" not in log
    assert "ROTATED-cmd-2" not in log and CANARY_PASSWORD not in log


def test_once_notifies_and_once_no_notify_does_not(moto: Moto, tmp_path: Path) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    rec = tmp_path / "told.jsonl"
    data = example_config(out, moto.url)
    data["notify"] = {"app": {"command": [PY, str(NOTIFY_CMD), "record", str(rec)]}}
    data["outputs"][0]["notify"] = ["app"]
    data["outputs"][2]["notify"] = ["app"]
    cfg = write_yaml(tmp_path / "sync.yaml", data)

    result = run_cli("once", "--no-notify", "-c", str(cfg))
    assert result.returncode == 0, result.stderr
    assert (out / "client.properties").exists()
    assert not rec.exists()  # the process has exited: it will never notify now

    moto.rotate(KAFKA_ID, kafka_secret(password="ROTATED-once-2"))
    result = run_cli("once", "-c", str(cfg))
    assert result.returncode == 0, result.stderr
    changed = f"{out / 'client.properties'}:{out / 'combined.properties'}"
    assert records(rec) == [{"argv": [], "changed": changed, "target": "app"}]
    assert "notify_sent" in result.stderr


def test_the_daemon_never_signals_itself_by_pidfile_or_by_regex(
    moto: Moto, tmp_path: Path, start_daemon: Any
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    pidfile = tmp_path / "daemon.pid"
    cfg = tmp_path / "sync.yaml"
    data = example_config(out, moto.url, poll={"interval": "200ms", "jitter": 0}, settle=0)
    # SIGUSR1 would end the daemon (it has no handler for it), so a slip cannot go unseen
    data["notify"] = {
        "self-pidfile": {"signal": "SIGUSR1", "pidfile": str(pidfile)},
        # the config path is in the daemon's command line and in no other process's
        "self-regex": {"signal": "SIGUSR1", "process": f"secretsync run -c {re.escape(str(cfg))}"},
    }
    data["outputs"][0]["notify"] = ["self-pidfile", "self-regex"]
    write_yaml(cfg, data)
    daemon: Daemon = start_daemon(cfg)
    pidfile.write_text(f"{daemon.proc.pid}\n")  # long before its first sync

    wait_until(lambda: daemon.has_event("notify_failed", target="self-pidfile"), 20, "refusal")
    wait_until(lambda: daemon.has_event("notify_skipped", target="self-regex"), 20, "no match")
    events = daemon.events()
    refused = events[index_of(events, "notify_failed", target="self-pidfile")]
    assert (refused["outcome"], refused["pid"]) == ("refused", daemon.proc.pid)
    skipped = events[index_of(events, "notify_skipped", target="self-regex")]
    assert skipped["outcome"] == "not_running"
    assert skipped["reason"] == "no process matches `process`"
    assert daemon.stop() < 5
    assert daemon.proc.returncode == 0  # not -SIGUSR1


# -- the notifier in this process -----------------------------------------------------------


class LogFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def events(self, name: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        found = [json.loads(line) for line in self.path.read_text().splitlines() if line]
        return [
            e
            for e in found
            if (name is None or e["event"] == name)
            and all(e.get(k) == v for k, v in fields.items())
        ]

    def one(self, name: str, **fields: Any) -> dict[str, Any]:
        found = self.events(name, **fields)
        assert len(found) == 1, (name, fields, self.events())
        return found[0]


@pytest.fixture
def log(tmp_path: Path) -> Iterator[LogFile]:
    path = tmp_path / "log.jsonl"
    with path.open("w") as stream:
        logs.configure("debug", "json", stream=stream)
        try:
            yield LogFile(path)
        finally:
            logs.configure("info", "json", stream=sys.stderr)


def make_config(targets: dict[str, Any], **top: Any) -> Config:
    data = {
        "aws": {"region": REGION},
        "settle": 0,
        "settle_max": 0,
        "outputs": [{"path": "/nonexistent/a.properties", "secrets": [{"id": "s"}]}],
        "notify": targets,
        **top,
    }
    return parse_config(data)


def count(metrics: Metrics, target: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "secretsync_notify_total", {"target": target, "outcome": outcome}
    )
    return value or 0.0


def files(tmp_path: Path, *names: str) -> list[Path]:
    paths = []
    for name in names:
        path = tmp_path / name
        path.write_text(f"content of {name}\n")
        paths.append(path)
    return paths


def written(targets: tuple[str, ...], *paths: Path, initial: bool = False) -> list[WrittenFile]:
    return [WrittenFile(p, targets, initial) for p in paths]


@pytest.mark.slow
async def test_a_signal_target_is_told_once_per_batch_and_each_outcome_logged_and_counted(
    tmp_path: Path, apps: Callable[..., App], log: LogFile
) -> None:
    a, b = files(tmp_path, "a.properties", "b.properties")
    app = apps("batch-app", [a])
    init_pidfile = tmp_path / "init.pid"
    init_pidfile.write_text("1\n")
    metrics = Metrics()
    config = make_config(
        {
            "app": {"signal": "SIGUSR1", "pidfile": str(app.pidfile)},
            "nobody": {"signal": "SIGUSR1", "process": r"no-such-process-[0-9a-f]{32}"},
            # SIGWINCH for pid 1: harmless even if a broken guard let it through
            "init": {"signal": "SIGWINCH", "pidfile": str(init_pidfile)},
        }
    )
    notifier = Notifier(config, metrics=metrics)

    notifier.submit(written(("app", "nobody", "init"), b, a))  # as pipelined writes finish
    await notifier.flush()

    assert [r["signal"] for r in app.barrier()] == ["SIGUSR1"]
    sent = log.one("notify_sent", target="app")
    assert (sent["pids"], sent["signal"], sent["kind"]) == ([app.pid], "SIGUSR1", "signal")
    assert sent["files"] == [str(a), str(b)]  # both files, one signal, sorted
    failed = log.one("notify_failed", target="nobody")
    assert (failed["outcome"], failed["level"]) == ("not_running", "warning")
    assert failed["reason"] == "no process matches `process`"
    refused = log.one("notify_failed", target="init")
    assert (refused["outcome"], refused["level"], refused["pid"]) == ("refused", "error", 1)
    assert count(metrics, "app", "ok") == 1
    assert count(metrics, "nobody", "not_running") == 1
    assert count(metrics, "init", "refused") == 1


async def test_a_missing_app_at_start_up_is_an_info_line_later_a_failure(
    tmp_path: Path, log: LogFile
) -> None:
    (a,) = files(tmp_path, "a.properties")
    metrics = Metrics()
    config = make_config({"app": {"pidfile": str(tmp_path / "not-yet.pid")}})
    notifier = Notifier(config, metrics=metrics)

    notifier.submit(written(("app",), a, initial=True))
    await notifier.flush()
    skipped = log.one("notify_skipped", target="app")
    assert (skipped["level"], skipped["outcome"]) == ("info", "not_running")
    assert log.events("notify_failed") == []

    notifier.submit(written(("app",), a, initial=False))
    await notifier.flush()
    failed = log.one("notify_failed", target="app")
    assert (failed["level"], failed["reason"]) == ("warning", "pidfile does not exist")
    # counted apart, so the NotifyFailed alert does not fire on every pod start
    assert count(metrics, "app", "skipped") == 1
    assert count(metrics, "app", "not_running") == 1


@pytest.mark.slow
async def test_command_runs_once_per_batch_without_a_shell_with_the_changed_files(
    tmp_path: Path, log: LogFile
) -> None:
    a, b = files(tmp_path, "a.properties", "b.properties")
    rec = tmp_path / "rec.jsonl"
    argv = [PY, str(NOTIFY_CMD), "record", str(rec), "$HOME; echo hi", "*"]
    notifier = Notifier(make_config({"reload": {"command": argv}}))

    notifier.submit([*written(("reload",), a), *written(("reload",), b, a)])
    await notifier.flush()

    assert records(rec) == [
        {"argv": ["$HOME; echo hi", "*"], "changed": f"{a}:{b}", "target": "reload"}
    ]
    assert log.one("notify_sent", target="reload")["exit_code"] == 0


@pytest.mark.slow
async def test_failing_hanging_and_missing_commands_are_logged_and_never_block_others(
    tmp_path: Path, log: LogFile, hang_pids: Path
) -> None:
    (a,) = files(tmp_path, "a.properties")
    rec, fails, pids = tmp_path / "good.jsonl", tmp_path / "fails.txt", hang_pids
    metrics = Metrics()
    config = make_config(
        {
            "good": {"command": [PY, str(NOTIFY_CMD), "record", str(rec)]},
            "exit3": {
                "command": [PY, str(NOTIFY_CMD), "fail", "3", "2000", str(fails)],
                "retries": 1,
                "retry_backoff": "100ms",
            },
            "hang": {"command": [PY, str(NOTIFY_CMD), "hang", str(pids)], "timeout": "3s"},
            "missing": {"command": [str(tmp_path / "no-such-program"), "x"]},
        }
    )
    notifier = Notifier(config, metrics=metrics)
    serve = asyncio.create_task(notifier.serve())
    try:
        notifier.submit(written(("hang", "exit3", "missing", "good"), a))
        await async_wait_until(lambda: pids.exists(), 10, "the hanging command to start")
        await async_wait_until(lambda: records(rec), 10, "the good command")
        await async_wait_until(lambda: log.events("notify_failed", target="exit3"), 10, "exit3")
        # the others are done while the hanging one still runs
        assert log.events("notify_failed", target="hang") == []
        leader, grandchild = map(int, pids.read_text().split())
        assert not is_dead(grandchild)

        await async_wait_until(
            lambda: log.events("notify_failed", target="hang"), 15, "the timeout"
        )
        await async_wait_until(
            lambda: is_dead(leader) and is_dead(grandchild), 10, "the process group to die"
        )
        hang = log.one("notify_failed", target="hang")
        assert (hang["outcome"], hang["level"]) == ("timeout", "error")

        exit3 = log.one("notify_failed", target="exit3")
        assert (exit3["outcome"], exit3["exit_code"], exit3["attempts"]) == ("error", 3, 2)
        assert exit3["output_truncated"] is True
        assert len(exit3["output"].encode()) <= 2048
        assert fails.read_text().splitlines() == ["run", "run"]  # retried once, not more
        assert len(log.events("notify_retry", target="exit3")) == 1
        missing = log.one("notify_failed", target="missing")
        assert missing["reason"] == "executable not found"

        # the notifier lives on: the next batch reaches the good target again
        notifier.submit(written(("good",), a))
        await async_wait_until(lambda: len(records(rec)) == 2, 10, "the next batch")
        # the command has run; its outcome is counted once the notifier has reaped it
        await async_wait_until(lambda: count(metrics, "good", "ok") == 2, 10, "its outcome")
        assert not serve.done()
    finally:
        serve.cancel()
        await asyncio.gather(serve, return_exceptions=True)
    assert count(metrics, "good", "ok") == 2
    assert count(metrics, "exit3", "error") == 1
    assert count(metrics, "hang", "timeout") == 1
    assert count(metrics, "missing", "error") == 1


@pytest.mark.slow
async def test_cancelling_the_notifier_kills_a_running_command(
    tmp_path: Path, log: LogFile, hang_pids: Path
) -> None:
    (a,) = files(tmp_path, "a.properties")
    pids = hang_pids
    config = make_config({"hang": {"command": [PY, str(NOTIFY_CMD), "hang", str(pids)]}})
    notifier = Notifier(config)
    serve = asyncio.create_task(notifier.serve())
    notifier.submit(written(("hang",), a))
    await async_wait_until(lambda: pids.exists(), 10, "the hanging command to start")
    leader, grandchild = map(int, pids.read_text().split())

    serve.cancel()
    await asyncio.wait_for(asyncio.gather(serve, return_exceptions=True), 5)

    assert is_dead(leader)
    await async_wait_until(lambda: is_dead(grandchild), 5, "the grandchild to die")


@pytest.mark.slow
async def test_http_target_is_called_once_per_batch_and_failures_are_logged(
    tmp_path: Path, log: LogFile
) -> None:
    a, b = files(tmp_path, "a.properties", "b.properties")
    refused_url = f"http://127.0.0.1:{free_port()}/reload"  # nothing listens there
    metrics = Metrics()
    async with HookServer() as server:
        config = make_config(
            {
                "ok": {"http": {"url": f"{server.url}/ok", "headers": {"X-Token": "t0k3n-value"}}},
                "fail": {"http": {"url": f"{server.url}/fail", "method": "PUT"}},
                "refused": {"http": {"url": refused_url, "timeout": "2s"}},
            }
        )
        notifier = Notifier(config, metrics=metrics)
        serve = asyncio.create_task(notifier.serve())
        try:
            notifier.submit([*written(("ok", "fail", "refused"), a), *written(("ok",), b)])
            await async_wait_until(lambda: len(log.events("notify_failed")) == 2, 10, "failures")
            assert server.calls("/ok") == [
                {
                    "path": "/ok",
                    "method": "POST",
                    "token": "t0k3n-value",
                    "body": {"target": "ok", "changed_files": [str(a), str(b)]},
                }
            ]
            failed = log.one("notify_failed", target="fail")
            assert (failed["outcome"], failed["status"], failed["reason"]) == (
                "error",
                500,
                "HTTP status 500",
            )
            assert [c["method"] for c in server.calls("/fail")] == ["PUT"]
            refused = log.one("notify_failed", target="refused")
            assert (refused["outcome"], refused["reason"]) == ("error", "connection refused")

            # later batches still go out, one call each
            notifier.submit(written(("ok",), a))
            await async_wait_until(lambda: len(server.calls("/ok")) == 2, 10, "second call")
            # the server saw the call before the notifier read the response and counted it
            await async_wait_until(lambda: count(metrics, "ok", "ok") == 2, 10, "its outcome")
            assert not serve.done()
        finally:
            serve.cancel()
            await asyncio.gather(serve, return_exceptions=True)
    assert count(metrics, "ok", "ok") == 2
    assert count(metrics, "fail", "error") == 1
    assert count(metrics, "refused", "error") == 1
    assert "t0k3n-value" not in log.path.read_text()


@pytest.mark.slow
async def test_reconfigure_switches_targets_and_settle(tmp_path: Path, log: LogFile) -> None:
    (a,) = files(tmp_path, "a.properties")
    old, new = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    before = make_config(
        {"t": {"command": [PY, str(NOTIFY_CMD), "record", str(old)]}},
        settle="1h",
        settle_max="1h",
    )
    after = make_config({"t": {"command": [PY, str(NOTIFY_CMD), "record", str(new)]}})
    notifier = Notifier(before)
    serve = asyncio.create_task(notifier.serve())
    try:
        notifier.submit(written(("t",), a))  # would wait an hour under the old config
        notifier.reconfigure(after)
        await async_wait_until(lambda: records(new), 10, "the new command")
    finally:
        serve.cancel()
        await asyncio.gather(serve, return_exceptions=True)
    assert not old.exists()
    assert records(new)[0]["target"] == "t"


@pytest.mark.slow
async def test_quick_batches_coalesce_per_target_and_the_last_run_sees_the_final_files(
    tmp_path: Path,
) -> None:
    (a,) = files(tmp_path, "a.properties")
    record = tmp_path / "runs.jsonl"
    slow = [
        PY,
        str(Path(__file__).parents[1] / "support" / "slow_cmd.py"),
        str(record),
        str(a),
        "2",
    ]
    metrics = Metrics()
    notifier = Notifier(make_config({"slow": {"command": slow}}), metrics=metrics)
    serve = asyncio.create_task(notifier.serve())
    try:
        for i in range(10):  # ten passes in quick succession, each changing the file
            a.write_text(f"version={i}\n")
            notifier.submit(written(("slow",), a))
            await asyncio.sleep(0)  # let the notifier dispatch, as between two real passes
        await async_wait_until(
            lambda: count(metrics, "slow", "ok") >= 1 and notifier.deliveries >= 1, 20, "run 1"
        )
        await asyncio.wait_for(notifier.flush(), 30)
    finally:
        serve.cancel()
        await asyncio.gather(serve, return_exceptions=True)
    runs = records(record)
    assert 1 <= len(runs) <= 2  # not ten runs of stale batches, one after the other
    assert runs[-1]["content"] == "version=9\n"
    assert count(metrics, "slow", "ok") == len(runs)


class _UpperBound(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.slow
async def test_splay_delays_each_delivery_within_its_bound_but_not_a_flush(
    tmp_path: Path,
) -> None:
    (a,) = files(tmp_path, "a.properties")
    stamps = tmp_path / "stamps"
    stamp = [PY, "-c", "import sys, time; open(sys.argv[1], 'a').write(f'{time.time()}\\n')"]
    config = make_config({"fleet": {"command": [*stamp, str(stamps)], "splay": "1s"}})
    notifier = Notifier(config, rng=_UpperBound())  # the longest delay splay allows
    serve = asyncio.create_task(notifier.serve())
    try:
        submitted = time.time()
        notifier.submit(written(("fleet",), a))
        await async_wait_until(stamps.exists, 20, "the splayed delivery")
        assert float(stamps.read_text().split()[0]) - submitted >= 1.0
    finally:
        serve.cancel()
        await asyncio.gather(serve, return_exceptions=True)

    # a flush (shutdown, `once`) delivers now, whatever the splay
    hour = make_config({"fleet": {"command": [*stamp, str(stamps)], "splay": "1h"}})
    notifier = Notifier(hour)
    notifier.submit(written(("fleet",), a))
    await asyncio.wait_for(notifier.flush(), 20)
    assert len(stamps.read_text().split()) == 2
