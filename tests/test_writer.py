"""writer.py: one writer per output, writes that survive cancellation, repair, sweeping."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from secretsync.files import WriteError
from secretsync.journal import Journal
from secretsync.locks import LockHeld, OutputLock
from secretsync.metrics import Metrics
from secretsync.state import OutputState, WrittenFile
from secretsync.writer import OutputWriter
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
    data = config_data(tmp_path)
    data["notify"] = {"app": {"command": ["true"]}}
    data["outputs"][0]["notify"] = ["app"]
    from secretsync.config import parse_config  # noqa: PLC0415

    out = parse_config(data).outputs[0]
    journal = SlowJournal()
    seen: list[WrittenFile] = []
    writer = writers(journal=journal, on_written=seen.append)
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
    assert [w.path for w in seen] == [out.path]  # handed on, so it will be notified
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


def test_a_lock_file_of_another_kind_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    (tmp_path / ".client.properties.secretsync-lock").mkdir()
    with pytest.raises(OSError):
        OutputLock(path, tmp_path).acquire()
