"""files.py: atomic write-if-changed, checked with real files, real faults and audit hooks."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from secretsync.output.files import (
    WriteError,
    read_current,
    real_dir,
    resolve_uid,
    sweep_temps,
    temp_owner,
    write_if_changed,
)

# (name, flags, mode the file had when it was first touched after creation)
_opens: list[tuple[str, int, int]] | None = None


def _audit(event: str, args: tuple[object, ...]) -> None:
    # os.open raises "open" (name, None, flags) before the file exists; the first
    # fchmod raises "os.chmod" (fd, mode, …) right after, when the file exists with
    # its birth mode.
    if _opens is None:
        return
    if event == "open" and isinstance(args[0], str) and isinstance(args[2], int):
        if args[2] & os.O_CREAT:
            _opens.append((args[0], args[2], -1))
    elif event == "os.chmod" and _opens and _opens[-1][2] == -1 and isinstance(args[0], int):
        name, flags, _ = _opens[-1]
        _opens[-1] = (name, flags, stat.S_IMODE(os.fstat(args[0]).st_mode))


sys.addaudithook(_audit)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_creates_file_and_parents_with_modes(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "client.properties"
    result = write_if_changed(path, b"k=v\n", mode=0o640)
    assert result.did_render
    assert path.read_bytes() == b"k=v\n"
    assert mode_of(path) == 0o640
    assert mode_of(path.parent) == 0o750
    assert mode_of(path.parent.parent) == 0o750  # every directory made, not only the last
    assert [p.name for p in path.parent.iterdir()] == ["client.properties"]  # no temp left


def test_temp_file_is_born_with_the_final_mode_exclusively(tmp_path: Path) -> None:
    global _opens
    path = tmp_path / "client.properties"
    old_umask = os.umask(0)
    _opens = []
    try:
        write_if_changed(path, b"k=v\n", mode=0o600)
        opens = list(_opens)
    finally:
        _opens = None
        os.umask(old_umask)
    assert len(opens) == 1
    temp, flags, mode = opens[0]
    assert "/" not in temp and temp.startswith(".client.properties.")  # beside the output
    assert mode == 0o600
    assert flags & os.O_EXCL and flags & os.O_NOFOLLOW


def test_umask_cannot_strip_requested_bits(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_if_changed(tmp_path / "f", b"x", mode=0o640)
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "f") == 0o640


def test_unchanged_bytes_leave_inode_and_mtime(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_if_changed(path, b"same", mode=0o600)
    before = os.stat(path)
    result = write_if_changed(path, b"same", mode=0o600)
    after = os.stat(path)
    assert not result.did_render and not result.fixed_attrs
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_mode_drift_is_fixed_without_rewriting(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_if_changed(path, b"same", mode=0o600)
    os.chmod(path, 0o644)
    ino = os.stat(path).st_ino
    result = write_if_changed(path, b"same", mode=0o600)
    assert result == type(result)(did_render=False, fixed_attrs=True)
    assert mode_of(path) == 0o600 and os.stat(path).st_ino == ino


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_owner_and_group_are_applied(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_if_changed(path, b"x", mode=0o640, uid=4321, gid=4322)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (4321, 4322)


def test_changed_bytes_replace_the_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_if_changed(path, b"A" * 20_000)
    seen: set[bytes] = set()
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            data = read_current(path)
            reads += 1
            # None would mean the file vanished during a replace
            seen.add(b"gone" if data is None else data[:1] + bytes([len(set(data))]))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(10):
            write_if_changed(path, (b"B" if i % 2 else b"A") * 20_000)
    finally:
        stop.set()
        thread.join()
    assert reads > 0
    assert seen <= {b"A\x01", b"B\x01"}  # never missing, never a mix of old and new bytes


FULL_DISK_SCRIPT = """
import resource, sys
from pathlib import Path
from secretsync.output.files import WriteError, write_if_changed
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    write_if_changed(Path(sys.argv[1]), b"N" * 100_000, mode=0o600)
except WriteError as exc:
    print(exc.reason)
    sys.exit(3)
"""


@pytest.mark.slow
def test_a_full_disk_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    write_if_changed(path, b"old=1\n")
    # RLIMIT_FSIZE makes write(2) fail with EFBIG exactly as a full disk does for our purposes
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT, str(path)], capture_output=True, text=True
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip() == "efbig"
    assert path.read_bytes() == b"old=1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client.properties"]


def test_a_directory_with_content_in_the_way_is_a_write_error(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    path.mkdir()
    (path / "theirs").write_text("kept")
    with pytest.raises(WriteError) as info:
        write_if_changed(path, b"x")
    assert info.value.path == path
    assert info.value.reason == "not_a_file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client.properties"]
    assert (path / "theirs").read_text() == "kept"


def test_an_empty_directory_in_the_way_is_removed_and_named(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    path.mkdir()
    result = write_if_changed(path, b"x")
    assert result.did_render and result.removed == "directory"
    assert path.read_bytes() == b"x"
    assert write_if_changed(path, b"y").removed is None


def test_a_file_where_the_parent_should_be_is_a_write_error(tmp_path: Path) -> None:
    (tmp_path / "notadir").write_text("x")
    with pytest.raises(WriteError, match="notadir"):
        write_if_changed(tmp_path / "notadir" / "f", b"x")


def test_symlinked_output_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    link = tmp_path / "client.properties"
    link.symlink_to(victim)
    write_if_changed(link, b"new")
    assert victim.read_bytes() == b"keep"
    assert not link.is_symlink() and link.read_bytes() == b"new"


def test_resolve_uid() -> None:
    assert resolve_uid(None) == -1
    assert resolve_uid(0) == 0 and resolve_uid("0") == 0
    assert resolve_uid("root") == 0
    with pytest.raises(WriteError, match="unknown user 'no-such-user-x'"):
        resolve_uid("no-such-user-x")


def test_a_parent_replaced_by_a_symlink_is_not_followed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = out / "client.properties"
    directory = real_dir(path)  # resolved when management starts
    write_if_changed(path, b"v1", directory=directory)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "client.properties").unlink()
    out.rmdir()
    out.symlink_to(elsewhere)  # someone swaps the directory for a link

    with pytest.raises(WriteError) as info:
        write_if_changed(path, b"v2", directory=directory)
    assert info.value.reason == "parent_not_directory"
    assert list(elsewhere.iterdir()) == []  # nothing written through the link
    assert read_current(path) is None  # and nothing read through it either


def test_symlinks_in_the_configured_path_are_resolved_once(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "via").symlink_to(real)
    path = tmp_path / "via" / "client.properties"
    assert real_dir(path) == real
    assert write_if_changed(path, b"v1", directory=real_dir(path)).did_render
    assert (real / "client.properties").read_bytes() == b"v1"


def test_an_owner_id_the_kernel_cannot_take_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    write_if_changed(path, b"old")
    for _ in range(3):
        with pytest.raises(WriteError) as info:
            write_if_changed(path, b"new", uid=4294967296)  # OverflowError in fchown
        assert info.value.reason == "owner"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client.properties"]
    assert path.read_bytes() == b"old"


def test_any_exception_before_the_rename_removes_the_temp(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    write_if_changed(path, b"old")

    def journal_fails(_inode: int) -> None:
        raise RuntimeError("journal down")

    with pytest.raises(RuntimeError):
        write_if_changed(path, b"new", before_replace=journal_fails)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client.properties"]
    assert path.read_bytes() == b"old"


def test_before_replace_gets_the_inode_the_output_ends_up_with(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    seen: list[int] = []
    write_if_changed(path, b"new", before_replace=seen.append)
    assert seen == [os.stat(path).st_ino]


def test_sweep_removes_only_our_stale_temps_of_the_given_outputs(tmp_path: Path) -> None:
    ours = [".client.properties.0a1b2c3d.secretsync.tmp", ".sr.properties.ffffffff.secretsync.tmp"]
    for name in ours:
        (tmp_path / name).write_text("secret copy")
    keep = {
        "client.properties": "output",
        ".other.properties.0a1b2c3d.secretsync.tmp": "another output's temp",
        ".client.properties.XYZ.secretsync.tmp": "not our pattern",
        "notes.txt": "someone else's",
    }
    for name, text in keep.items():
        (tmp_path / name).write_text(text)
    (tmp_path / ".client.properties.12345678.secretsync.tmp").mkdir()  # not a regular file
    victim = tmp_path / "victim"
    victim.write_text("x")
    (tmp_path / ".sr.properties.87654321.secretsync.tmp").symlink_to(victim)

    removed = sweep_temps(tmp_path, ["client.properties", "sr.properties"])

    assert sorted(removed) == sorted(ours)
    left = {p.name for p in tmp_path.iterdir()}
    assert set(keep) <= left and not set(ours) & left
    assert victim.read_text() == "x"
    assert (tmp_path / ".sr.properties.87654321.secretsync.tmp").is_symlink()
    assert temp_owner(".a.b.0a1b2c3d.secretsync.tmp") == "a.b"
    assert temp_owner("a.0a1b2c3d.secretsync.tmp") is None
    assert sweep_temps(tmp_path / "missing", ["x"]) == []
