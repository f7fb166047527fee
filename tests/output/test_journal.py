"""journal.py: pending-notification records, with real files."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest

from secretsync.output.journal import RECORD_MAX_BYTES, Journal, JournalError, Record, digest_of


def test_a_record_lives_beside_its_output_until_every_target_is_told(tmp_path: Path) -> None:
    journal = Journal()
    path = tmp_path / "client.properties"
    where = journal.location(path, tmp_path)
    assert where == tmp_path / ".client.properties.secretsync-pending"

    journal.record(path, tmp_path, "d1", ("a", "b"), False)
    record = journal.load(path, tmp_path)
    assert record is not None and record.targets == ("a", "b") and record.digest == "d1"
    assert os.stat(where).st_mode & 0o777 == 0o600

    journal.done(path, tmp_path, "a", "d1")
    assert journal.load(path, tmp_path).targets == ("b",)  # type: ignore[union-attr]
    journal.done(path, tmp_path, "b", "d1")
    assert journal.load(path, tmp_path) is None and not where.exists()


def test_a_newer_write_keeps_a_target_told_about_older_content(tmp_path: Path) -> None:
    journal = Journal()
    path = tmp_path / "client.properties"
    journal.record(path, tmp_path, "old", ("a",), False)
    journal.record(path, tmp_path, "new", ("b",), False)  # written again before delivery
    record = journal.load(path, tmp_path)
    assert record is not None and record.digest == "new" and record.targets == ("a", "b")

    journal.done(path, tmp_path, "a", "old")  # that delivery was about the old content
    assert journal.load(path, tmp_path).targets == ("a", "b")  # type: ignore[union-attr]
    journal.done(path, tmp_path, "a", "new")
    assert journal.load(path, tmp_path).targets == ("b",)  # type: ignore[union-attr]


def test_a_state_dir_holds_records_named_after_the_path(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    journal = Journal(state)
    a, b = tmp_path / "x" / "client.properties", tmp_path / "y" / "client.properties"
    journal.record(a, a.parent, "d", ("t",), True)
    journal.record(b, b.parent, "e", ("t",), True)
    assert len(list(state.iterdir())) == 2
    assert journal.load(a, a.parent).digest == "d"  # type: ignore[union-attr]
    assert journal.load(b, b.parent).digest == "e"  # type: ignore[union-attr]
    assert not a.parent.exists()  # nothing beside the outputs


def test_garbage_or_foreign_records_are_ignored(tmp_path: Path) -> None:
    journal = Journal()
    path = tmp_path / "client.properties"
    where = journal.location(path, tmp_path)
    where.write_text("not json")
    assert journal.load(path, tmp_path) is None
    where.write_text('{"path": "/elsewhere", "digest": "d", "targets": ["t"], "initial": false}')
    assert journal.load(path, tmp_path) is None
    journal.drop(path, tmp_path)
    assert not where.exists()
    assert digest_of(b"x") == digest_of(b"x") != digest_of(b"y")


# -- a neighbour who can write to the output directory ------------------------------------


def test_a_record_nested_too_deeply_to_read_is_absent(tmp_path: Path) -> None:
    journal = Journal()
    path = tmp_path / "client.properties"
    for text in ("[" * 3000, "{" * 3000 + "}" * 3000, '{"path": ' + "[" * 5000):
        journal.location(path, tmp_path).write_text(text)
        assert journal.load(path, tmp_path) is None
        journal.record(path, tmp_path, "d", ("t",), False)  # replaces it
        assert journal.load(path, tmp_path) == Record(str(path), "d", ("t",), False)


def test_a_huge_record_is_not_read(tmp_path: Path) -> None:
    journal = Journal()
    path = tmp_path / "client.properties"
    where = journal.location(path, tmp_path)
    with where.open("wb") as fh:  # sparse: 1 GiB that takes no disk
        fh.truncate(1 << 30)
    tracemalloc.start()
    try:
        assert journal.load(path, tmp_path) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * RECORD_MAX_BYTES  # the cap, not the file


def test_a_record_larger_than_the_cap_is_not_read_even_when_it_grows(tmp_path: Path) -> None:
    journal = Journal()
    path = tmp_path / "client.properties"
    where = journal.location(path, tmp_path)
    body = json.dumps({"digest": "d", "initial": False, "path": str(path), "targets": ["t"]})
    where.write_text(body + " " * (RECORD_MAX_BYTES - len(body)))
    assert journal.load(path, tmp_path) is not None  # at the cap: read
    where.write_text(body + " " * (RECORD_MAX_BYTES + 1 - len(body)))
    assert journal.load(path, tmp_path) is None


@pytest.mark.parametrize("kind", ["empty directory", "fifo", "symlink", "dangling symlink"])
def test_a_non_file_at_the_records_name_is_removed_when_a_record_is_written(
    tmp_path: Path, kind: str
) -> None:
    journal = Journal()
    path = tmp_path / "client.properties"
    where = journal.location(path, tmp_path)
    target = tmp_path / "elsewhere"
    target.write_text("not the journal's")
    if kind == "empty directory":
        where.mkdir()
    elif kind == "fifo":
        os.mkfifo(where)
    elif kind == "symlink":
        where.symlink_to(target)
    else:
        where.symlink_to(tmp_path / "missing")
    assert journal.load(path, tmp_path) is None
    journal.record(path, tmp_path, "d", ("t",), False)
    assert where.is_file() and not where.is_symlink()
    assert journal.load(path, tmp_path) == Record(str(path), "d", ("t",), False)
    assert target.read_text() == "not the journal's"


def test_a_directory_with_content_at_the_records_name_fails_the_record_only(
    tmp_path: Path,
) -> None:
    journal = Journal()
    path = tmp_path / "client.properties"
    where = journal.location(path, tmp_path)
    where.mkdir()
    (where / "theirs").write_text("kept")
    with pytest.raises(JournalError, match="a directory"):
        journal.record(path, tmp_path, "d", ("t",), False)
    assert (where / "theirs").read_text() == "kept"  # never deleted
    assert journal.load(path, tmp_path) is None
    journal.done(path, tmp_path, "t", "d")  # never raises
    journal.drop(path, tmp_path)
    assert (where / "theirs").exists()
