"""writer.py: one writer per output, writes that survive cancellation, repair, sweeping."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from secretsync.config.model import OutputConfig, parse_config
from secretsync.metrics import Metrics
from secretsync.output.files import WriteError
from secretsync.output.journal import Journal
from secretsync.output.locks import LockHeld, LockRefused, OutputLock
from secretsync.output.writer import OutputWriter
from secretsync.state import OutputState
from tests.support.harness import config_data, make_config
from tests.support.wait import async_wait_until


@pytest.fixture
def writers() -> Any:
    made: list[OutputWriter] = []

    def make(**kwargs: Any) -> OutputWriter:
        writer = OutputWriter(Metrics(), **kwargs)
        made.append(writer)
        return writer

    yield make
    for writer in made:
        writer.close()


def output_with_a_target(tmp_path: Path) -> OutputConfig:
    """An output under ``tmp_path`` with one notify target (its writes are journalled)."""
    data = config_data(tmp_path)
    data["notify"] = {"app": {"command": ["true"]}}
    data["outputs"][0]["notify"] = ["app"]
    return parse_config(data).outputs[0]


class SlowJournal(Journal):
    """A journal whose record() waits for the test: the write is held just before its rename."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def record(self, *args: Any, **kwargs: Any) -> None:
        self.entered.set()
        self.release.wait(30)
        super().record(*args, **kwargs)


async def test_a_write_in_flight_finishes_and_is_recorded_when_its_caller_is_cancelled(
    tmp_path: Path, writers: Any
) -> None:
    out = output_with_a_target(tmp_path)
    journal = SlowJournal()
    writer = writers(journal=journal)
    writer.manage([out.path])
    state = OutputState(out)

    task = asyncio.create_task(writer.write(state, b"k=new\n", {"s": "v2"}))
    await async_wait_until(journal.entered.is_set, 10, "the write to reach its rename")
    task.cancel()  # a shutdown cancels the cycle that asked for the write
    with pytest.raises(asyncio.CancelledError):
        await task
    journal.release.set()
    await writer.drain()

    assert out.path.read_bytes() == b"k=new\n"
    assert state.last_bytes == b"k=new\n" and state.versions == {"s": "v2"}
    written = writer.take_written()
    assert [w.path for w in written] == [out.path]  # handed on, so it will be notified
    assert writer.take_written() == []  # …once
    assert journal.load(out.path, tmp_path) is not None  # …and journaled before the rename


def test_one_writer_per_output_names_the_holder_and_takes_nothing(
    tmp_path: Path, writers: Any
) -> None:
    config = make_config(tmp_path)
    first = writers()
    first.manage([config.outputs[1].path])
    second = writers()
    paths = [o.path for o in config.outputs]
    with pytest.raises(LockHeld) as info:
        second.manage(paths)
    assert info.value.path == config.outputs[1].path
    assert info.value.pid == os.getpid()
    assert str(config.outputs[1].path) in str(info.value) and f"pid {os.getpid()}" in str(
        info.value
    )
    # all or nothing: the lock it had taken on outputs[0] was given back
    third = writers()
    third.manage([paths[0]])
    third.close()
    first.close()
    second.manage(paths)  # free now


def test_manage_sweeps_our_stale_temp_files(tmp_path: Path, writers: Any) -> None:
    config = make_config(tmp_path)
    stale = tmp_path / ".client.properties.deadbeef.secretsync.tmp"
    stale.write_text("a copy of a secret left by a kill -9")
    foreign = tmp_path / ".someone-else.deadbeef.secretsync.tmp"
    foreign.write_text("not ours to remove")
    writers().manage([o.path for o in config.outputs])
    assert not stale.exists() and foreign.exists()


async def test_repair_restores_content_and_mode_and_ignores_unmanaged(
    tmp_path: Path, writers: Any
) -> None:
    out = make_config(tmp_path).outputs[0]
    writer = writers()
    state = OutputState(out)
    assert await writer.repair(state) is False  # not managed
    writer.manage([out.path])
    assert await writer.repair(state) is False  # never written
    await writer.write(state, b"k=v\n", {})
    assert await writer.repair(state) is False  # already right
    out.path.write_bytes(b"tampered\n")
    os.chmod(out.path, 0o644)
    assert await writer.repair(state) is True
    assert out.path.read_bytes() == b"k=v\n" and os.stat(out.path).st_mode & 0o777 == 0o600


async def test_a_parent_swapped_for_a_symlink_after_start_is_refused(
    tmp_path: Path, writers: Any
) -> None:
    out_dir = tmp_path / "out"
    out = make_config(out_dir).outputs[0]
    writer = writers()
    writer.manage([out.path])  # the directory is resolved (and made) here
    state = OutputState(out)
    await writer.write(state, b"k=1\n", {})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out_dir.rename(tmp_path / "moved-away")
    out_dir.symlink_to(elsewhere)

    with pytest.raises(WriteError) as info:
        await writer.write(state, b"k=2\n", {})
    assert info.value.reason == "parent_not_directory"
    assert list(elsewhere.iterdir()) == []


def plant(where: Path, kind: str) -> None:
    """Put something that is not a regular file at ``where``, for real."""
    if kind == "directory":
        where.mkdir()
        (where / "theirs").write_text("kept")
    elif kind == "empty directory":
        where.mkdir()
    elif kind == "fifo":
        os.mkfifo(where)
    elif kind == "symlink":
        target = where.parent / "symlink-target"
        target.write_text("")
        where.symlink_to(target)
    elif kind == "dangling symlink":
        where.symlink_to(where.parent / "nowhere")
    elif kind == "socket":
        # bound under a short name, then renamed: a pytest tmp_path (with an xdist worker's
        # folder) can pass the 107 bytes an AF_UNIX address may hold
        with (
            tempfile.TemporaryDirectory(dir="/tmp") as short,
            socket.socket(socket.AF_UNIX) as sock,
        ):
            sock.bind(f"{short}/s")
            os.rename(f"{short}/s", where)
    else:
        raise AssertionError(kind)


LOCK_PLANTS = ["directory", "empty directory", "fifo", "symlink", "dangling symlink", "socket"]


@pytest.mark.parametrize("kind", LOCK_PLANTS)
def test_a_lock_entry_that_is_not_a_regular_file_refuses_the_output(
    tmp_path: Path, writers: Any, kind: str
) -> None:
    config = make_config(tmp_path)
    paths = [o.path for o in config.outputs]
    lock_path = tmp_path / f".{paths[1].name}.secretsync-lock"
    plant(lock_path, kind)
    writer = writers()
    with pytest.raises(LockRefused) as info:
        writer.manage(paths)
    assert str(lock_path) in str(info.value) and "not a regular file" in str(info.value)
    assert getattr(info.value, "path", None) == paths[1]  # each refusal names its output
    # all or nothing: the lock taken on the first output was given back
    other = writers()
    other.manage([paths[0]])
    with pytest.raises(LockRefused):
        OutputLock(paths[1], tmp_path).acquire()
    assert os.path.lexists(lock_path)  # reported, never removed: it is not ours


async def test_a_lock_file_replaced_under_the_daemon_is_taken_again_before_a_write(
    tmp_path: Path, writers: Any
) -> None:
    out = make_config(tmp_path).outputs[0]
    lock_path = tmp_path / f".{out.path.name}.secretsync-lock"
    writer = writers()
    writer.manage([out.path])
    state = OutputState(out)
    await writer.write(state, b"k=1\n", {})
    # a neighbour deletes the lock file; another secretsync makes a new one and holds it
    lock_path.unlink()
    intruder = OutputLock(out.path, tmp_path)
    intruder.acquire()
    with pytest.raises(WriteError) as info:
        await writer.write(state, b"k=2\n", {})
    assert info.value.reason == "locked" and "another secretsync" in str(info.value)
    assert out.path.read_bytes() == b"k=1\n"
    with pytest.raises(WriteError):  # a repair is a write too
        out.path.write_bytes(b"tampered\n")
        await writer.repair(state)
    intruder.release()
    # free again: the next write takes the new lock file first
    await writer.write(state, b"k=3\n", {})
    assert out.path.read_bytes() == b"k=3\n"
    with pytest.raises(LockHeld):
        OutputLock(out.path, tmp_path).acquire()


async def test_a_journal_that_cannot_be_written_costs_crash_safety_not_the_write(
    tmp_path: Path, writers: Any, log_buffer: io.StringIO
) -> None:
    out = output_with_a_target(tmp_path)
    journal = Journal()
    pending = journal.location(out.path, tmp_path)
    plant(pending, "directory")
    writer = writers(journal=journal)
    writer.manage([out.path])
    written = await writer.write(OutputState(out), b"k=v\n", {"s": "v1"})

    assert written is not None and out.path.read_bytes() == b"k=v\n"
    assert [w.path for w in writer.take_written()] == [out.path]  # still notified
    assert (pending / "theirs").read_text() == "kept"
    events = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    failed = [e for e in events if e["event"] == "notify_journal_failed"]
    assert len(failed) == 1 and failed[0]["path"] == str(out.path)
    assert str(pending) in failed[0]["error"]


@pytest.mark.parametrize("kind", ["empty directory", "fifo", "symlink", "socket"])
async def test_a_non_file_at_the_outputs_name_is_removed_and_reported(
    tmp_path: Path, writers: Any, log_buffer: io.StringIO, kind: str
) -> None:
    out = make_config(tmp_path).outputs[0]
    plant(out.path, kind)
    writer = writers()
    writer.manage([out.path])
    await writer.write(OutputState(out), b"k=v\n", {})
    assert out.path.is_file() and not out.path.is_symlink()
    assert out.path.read_bytes() == b"k=v\n"
    events = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    removed = [e for e in events if e["event"] == "output_non_file_removed"]
    want = kind.removeprefix("empty ")
    assert [(e["path"], e["kind"]) for e in removed] == [(str(out.path), want)]


async def test_a_directory_with_content_at_the_outputs_name_is_a_clear_error(
    tmp_path: Path, writers: Any
) -> None:
    out = make_config(tmp_path).outputs[0]
    plant(out.path, "directory")
    writer = writers()
    writer.manage([out.path])
    with pytest.raises(WriteError) as info:
        await writer.write(OutputState(out), b"k=v\n", {})
    assert info.value.reason == "not_a_file"
    assert "a directory is in the way" in str(info.value) and str(out.path) in str(info.value)
    assert (out.path / "theirs").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir() if "secretsync.tmp" in p.name) == []


class ThreadNotingJournal(Journal):
    """A journal that notes the thread each record() runs on (a write's last step before
    its rename)."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def record(self, *args: Any, **kwargs: Any) -> None:
        self.threads.append(threading.get_ident())
        super().record(*args, **kwargs)


@pytest.mark.parametrize("in_thread", [True, False])
async def test_a_write_runs_in_a_worker_thread_or_on_the_loop_as_asked(
    tmp_path: Path, writers: Any, in_thread: bool
) -> None:
    out = output_with_a_target(tmp_path)
    journal = ThreadNotingJournal()
    writer = writers(journal=journal, in_thread=in_thread)
    writer.manage([out.path])
    state = OutputState(out)

    written = await writer.write(state, b"k=v1\n", {"s": "v1"})
    os.chmod(out.path, 0o644)  # drift: a repair goes through the same _blocking step
    assert await writer.repair(state)

    assert written is not None
    assert out.path.read_bytes() == b"k=v1\n"
    assert stat.S_IMODE(out.path.stat().st_mode) == out.mode
    loop_thread = threading.get_ident()
    assert len(journal.threads) == 1
    assert (journal.threads[0] != loop_thread) is in_thread
