"""journal.py: pending-notification records, with real files."""

from __future__ import annotations

import os
from pathlib import Path

from secretsync.journal import Journal, digest_of


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
