"""A neighbour who can write to the output directory, and the open-files limit: real children.

Each test plants something for real beside an output (a journal record nested
too deeply or of 1 GiB, a directory at the journal's or the output's name,
something other than a file at the lock's name, a read-only volume) or runs
``secretsync`` under a real RLIMIT_NOFILE, then runs ``secretsync once`` or
``run`` against moto and checks what the user sees: the exit code, the files,
the notifications, the log events, and the memory the daemon took.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.apps import NOTIFY_CMD
from tests.support.configs import example_config, write_yaml
from tests.support.daemon import Daemon, run_cli
from tests.support.motoserver import Moto
from tests.support.namespaces import require_unshare
from tests.support.seeds import CANARY_PASSWORD, CANARY_SR_SECRET
from tests.support.wait import wait_until

PY = sys.executable
MEMORY_LIMIT_KIB = 160 * 1024  # the memory limit the ECS and Kubernetes manifests ship
CLIENT = "client.properties"
NAMES = ["client.properties", "combined.properties", "schema-registry.properties"]


def sync_data(moto: Moto, tmp_path: Path, out: Path) -> dict[str, Any]:
    """The shipped example against moto, outputs in ``out``, each notifying target ``app``
    (a command that records its calls in ``tmp_path/calls.jsonl``)."""
    data = example_config(out, moto.url)
    data["poll"] = {"interval": "200ms", "jitter": 0}
    data["settle"] = "0s"
    calls = tmp_path / "calls.jsonl"
    data["notify"] = {"app": {"command": [PY, str(NOTIFY_CMD), "record", str(calls)]}}
    for output in data["outputs"]:
        output["notify"] = ["app"]
    return data


def sync_yaml(moto: Moto, tmp_path: Path, out: Path, *, name: str = "sync.yaml") -> Path:
    return write_yaml(tmp_path / name, sync_data(moto, tmp_path, out))


def told(tmp_path: Path) -> list[str]:
    """The files the `app` target was told about, in order."""
    calls = tmp_path / "calls.jsonl"
    if not calls.exists():
        return []
    changed = [json.loads(line)["changed"] for line in calls.read_text().splitlines()]
    return sorted(Path(p).name for c in changed for p in c.split(":") if p)


def once(
    cfg: Path, *args: str, nofile: tuple[int, int] | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """``secretsync once`` as a child, optionally under a real RLIMIT_NOFILE."""
    return run_cli(
        "once", "-c", str(cfg), "--log-format", "json", *args, timeout_s=timeout_s, nofile=nofile
    )


def events(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def named(text: str, event: str) -> list[dict[str, Any]]:
    return [e for e in events(text) if e.get("event") == event]


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the most resident memory the process ever had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def no_canary(text: str) -> None:
    assert CANARY_PASSWORD not in text and CANARY_SR_SECRET not in text


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Child processes started by the test; any still running at the end is killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# -- 8, 9: the journal is read with suspicion ----------------------------------------------


def test_a_journal_nested_too_deeply_is_absent_and_every_start_goes_on(
    moto: Moto, tmp_path: Path
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    out.mkdir()
    cfg = sync_yaml(moto, tmp_path, out)
    (out / f".{CLIENT}.secretsync-pending").write_text("[" * 3000)

    result = once(cfg)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == NAMES
    assert told(tmp_path) == NAMES
    ignored = named(result.stderr, "notify_journal_ignored")
    assert [e["path"] for e in ignored] == [str(out / CLIENT)]
    assert ignored[0]["problem"] == "not a valid record"
    assert not (out / f".{CLIENT}.secretsync-pending").exists()  # replaced, then told: gone
    no_canary(result.stderr)


def test_a_huge_sparse_journal_is_never_read(moto: Moto, tmp_path: Path, start_daemon: Any) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    out.mkdir()
    cfg = sync_yaml(moto, tmp_path, out)
    with (out / f".{CLIENT}.secretsync-pending").open("wb") as fh:
        fh.truncate(1 << 30)  # 1 GiB that takes no disk

    daemon: Daemon = start_daemon(cfg)
    wait_until(lambda: daemon.has_event("poll_cycle") or daemon.proc.poll() is not None, 60)
    assert daemon.proc.poll() is None, daemon.log_path.read_text()[-2000:]
    peak = peak_rss_kib(daemon.proc.pid)
    wait_until(lambda: told(tmp_path) == NAMES, 30, "every output written and told")
    assert peak < MEMORY_LIMIT_KIB, f"peak RSS {peak} KiB"
    assert daemon.stop() < 10 and daemon.proc.returncode == 0
    ignored = [e for e in daemon.events() if e["event"] == "notify_journal_ignored"]
    assert ignored and "larger than" in ignored[0]["problem"]


# -- 10: a directory at the journal's or the output's name --------------------------------


def test_a_directory_at_the_journals_name_costs_crash_safety_never_the_write(
    moto: Moto, tmp_path: Path
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    out.mkdir()
    cfg = sync_yaml(moto, tmp_path, out)
    planted = out / f".{CLIENT}.secretsync-pending"
    planted.mkdir()
    (planted / "theirs").write_text("kept")
    empty = out / ".combined.properties.secretsync-pending"
    empty.mkdir()

    result = once(cfg)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == NAMES
    assert told(tmp_path) == NAMES
    failed = named(result.stderr, "notify_journal_failed")
    assert [e["path"] for e in failed] == [str(out / CLIENT)]
    assert str(planted) in failed[0]["error"]
    removed = named(result.stderr, "notify_journal_non_file_removed")
    assert [(e["path"], e["kind"]) for e in removed] == [(str(empty), "directory")]
    assert (planted / "theirs").read_text() == "kept"  # never deleted


def test_a_directory_at_an_outputs_name_is_reported_and_costs_that_output_only(
    moto: Moto, tmp_path: Path
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    out.mkdir()
    cfg = sync_yaml(moto, tmp_path, out)
    (out / CLIENT).mkdir()
    (out / CLIENT / "theirs").write_text("kept")
    (out / "combined.properties").mkdir()  # empty: removed, and said so

    result = once(cfg)
    assert result.returncode == 1
    failed = named(result.stderr, "output_failed")
    assert [(e["path"], e["reason"], e["errno"]) for e in failed] == [
        (str(out / CLIENT), "write", "not_a_file")
    ]
    assert "a directory is in the way" in failed[0]["error"]
    removed = named(result.stderr, "output_non_file_removed")
    assert [(e["path"], e["kind"]) for e in removed] == [
        (str(out / "combined.properties"), "directory")
    ]
    assert (out / "combined.properties").is_file()
    assert (out / "schema-registry.properties").is_file()
    assert told(tmp_path) == ["combined.properties", "schema-registry.properties"]


# -- 11: one writer per output, whatever is planted at the lock's name --------------------


def plant(where: Path, kind: str) -> None:
    if kind == "directory":
        where.mkdir()
    elif kind == "fifo":
        os.mkfifo(where)
    elif kind == "symlink":
        target = where.parent.parent / "elsewhere"  # a file beside the output directory
        target.write_text("")
        where.symlink_to(target)
    else:
        raise AssertionError(kind)


def startup_error(stderr: str) -> str:
    """The text of the start-up refusal: the last line, a JSON log line (the logs are JSON)."""
    event = json.loads(stderr.strip().splitlines()[-1])
    assert event["event"] == "startup_failed" and event["exit_code"] == 2, event
    return str(event["error"])


@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink"])
def test_a_lock_that_is_not_a_regular_file_refuses_the_start(
    moto: Moto, tmp_path: Path, kind: str
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    out.mkdir()
    lock = out / f".{CLIENT}.secretsync-lock"
    plant(lock, kind)
    cfg = sync_yaml(moto, tmp_path, out)

    result = once(cfg)
    assert result.returncode == 2, result.stderr[-2000:]
    message = startup_error(result.stderr)
    assert str(lock) in message
    assert f"is a {kind}, not a regular file" in message
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == []
    assert os.path.lexists(lock)  # reported, never removed


def test_two_daemons_with_a_fifo_at_the_lock_both_refuse_to_start(
    moto: Moto, tmp_path: Path, start_daemon: Any
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    out.mkdir()
    plant(out / f".{CLIENT}.secretsync-lock", "fifo")
    first = sync_yaml(moto, tmp_path, out, name="a.yaml")
    second = sync_yaml(moto, tmp_path, out, name="b.yaml")
    for cfg in (first, second):
        daemon: Daemon = start_daemon(cfg)
        assert daemon.proc.wait(timeout=60) == 2
        assert "not a regular file" in daemon.log_path.read_text()
    assert not (out / CLIENT).exists()


def test_a_reload_adding_an_output_whose_lock_is_not_a_file_is_refused(
    moto: Moto, tmp_path: Path, start_daemon: Any
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    out.mkdir()
    data = sync_data(moto, tmp_path, out)
    kept = dict(data, outputs=[o for o in data["outputs"] if Path(o["path"]).name != CLIENT])
    cfg = write_yaml(tmp_path / "sync.yaml", kept)
    daemon: Daemon = start_daemon(cfg, "--no-watch")
    wait_until(lambda: (out / "combined.properties").exists(), 60, "the first sync")
    plant(out / f".{CLIENT}.secretsync-lock", "directory")

    write_yaml(cfg, data)
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: daemon.has_event("config_reload_failed"), 30, "the reload to fail")
    failed = [e for e in daemon.events() if e["event"] == "config_reload_failed"]
    assert str(out / f".{CLIENT}.secretsync-lock") in failed[0]["error"]
    assert "not a regular file" in failed[0]["error"]
    assert daemon.proc.poll() is None and not (out / CLIENT).exists()
    assert daemon.stop() < 10 and daemon.proc.returncode == 0


def test_a_volume_read_only_at_start_is_locked_before_the_first_write(
    moto: Moto, tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    unshare = require_unshare()
    nsenter = shutil.which("nsenter")
    if nsenter is None:
        pytest.fail("nsenter (util-linux) is needed to make the volume writable again")
    moto.seed_use_case()
    out = tmp_path / "out"
    out.mkdir()
    cfg = sync_yaml(moto, tmp_path, out)
    log = tmp_path / "first.log"
    # the first daemon sees `out` read-only (a bind mount in its own mount namespace)
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    with log.open("wb") as fh:
        first = subprocess.Popen(
            [
                *(unshare, "--mount", "--propagation", "private"),
                *("sh", "-c", script, "sh", str(out)),
                *(PY, "-m", "secretsync", "run", "-c", str(cfg), "--no-watch"),
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    children.append(first)

    def logged(event: str) -> list[dict[str, Any]]:
        return named(log.read_text(errors="replace"), event)

    wait_until(lambda: logged("output_failed") or first.poll() is not None, 60, "a failed write")
    assert first.poll() is None, log.read_text()[-2000:]
    assert {e["errno"] for e in logged("output_failed")} == {"erofs"}
    assert logged("output_lock_unavailable")
    # the volume becomes writable: the lock is taken before the first write succeeds
    subprocess.run(
        [nsenter, "-t", str(first.pid), "-m", "mount", "-o", "remount,bind,rw", str(out)],
        check=True,
        timeout=30,
    )
    wait_until(lambda: told(tmp_path) == NAMES, 60, "every output written and told")
    assert {e["path"] for e in logged("output_lock_taken")} == {str(out / n) for n in NAMES}
    rendered = (out / CLIENT).read_bytes()

    # another secretsync with another config for the same file is refused
    other = example_config(out, moto.url)
    other["outputs"][0]["static"] = {"security.protocol": "SASL_PLAINTEXT"}
    result = once(write_yaml(tmp_path / "other.yaml", other))
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"managed by another secretsync process (pid {first.pid})" in result.stderr
    assert (out / CLIENT).read_bytes() == rendered
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0


# -- 12: more outputs than the open-files limit allows ------------------------------------


def many_outputs(moto: Moto, tmp_path: Path, count: int) -> tuple[Path, Path]:
    moto.seed_use_case()
    out = tmp_path / "out"
    data = example_config(out, moto.url)
    template = data["outputs"][1]  # one secret, shared by every output
    data["outputs"] = [dict(template, path=str(out / f"sr-{n}.properties")) for n in range(count)]
    return write_yaml(tmp_path / "sync.yaml", data), out


@pytest.mark.parametrize("command", ["once", "run"])
def test_more_outputs_than_the_open_files_limit_allows_is_a_clear_refusal(
    moto: Moto, tmp_path: Path, command: str
) -> None:
    cfg, out = many_outputs(moto, tmp_path, 1100)
    result = run_cli(
        command, "-c", str(cfg), "--log-format", "json", timeout_s=120, nofile=(1024, 1024)
    )
    assert result.returncode == 2, result.stderr[-2000:]
    message = startup_error(result.stderr)
    assert message.startswith("1100 outputs need about 1356 open files")
    assert "open-files limit (RLIMIT_NOFILE) is 1024" in message
    assert not out.exists() or list(out.iterdir()) == []


def test_the_soft_open_files_limit_is_raised_for_many_outputs(moto: Moto, tmp_path: Path) -> None:
    cfg, out = many_outputs(moto, tmp_path, 1100)
    result = once(cfg, nofile=(1024, 4096), timeout_s=300)
    assert result.returncode == 0, result.stderr[-2000:]
    written = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert len(written) == 1100
    assert not named(result.stderr, "output_failed")
