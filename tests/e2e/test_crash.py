"""Crash consistency: kill -9 the daemon again and again while large secrets rotate.

A reader thread snapshots the output file the whole time. Every snapshot must
parse to a complete map of one version (never a torn or mixed file), and
after a clean restart the output directory holds only the outputs and their
lock files: no temp copy of a secret, no stale journal record.
"""

from __future__ import annotations

import hashlib
import random
import threading
from pathlib import Path
from typing import Any

import javaproperties

from tests.support.configs import write_yaml
from tests.support.motoserver import Moto
from tests.support.wait import wait_until

SECRET_ID = "team/large"
KILLS = 6


def version_map(n: int) -> dict[str, str]:
    """A large secret (≈ 300 KB rendered) whose every key says which version it is."""
    rng = random.Random(n)
    return {f"key.{k}": f"v{n}:" + "".join(rng.choices("ab=:# \\\né", k=40_000)) for k in range(6)}


class Snapshots(threading.Thread):
    """Reads the file every millisecond and keeps each distinct content once (a reader
    spinning flat out cost ≈ 8 CPU-s of the test and starved the daemons it watches)."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.seen: dict[str, bytes] = {}
        self.reads = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.001):
            try:
                data = self.path.read_bytes()
            except OSError:
                continue
            self.reads += 1
            self.seen.setdefault(hashlib.sha256(data).hexdigest(), data)


def parse(data: bytes) -> dict[str, str]:
    return dict(javaproperties.loads(data.decode("iso-8859-1")))


def test_kill_9_while_large_secrets_rotate_never_tears_a_file_nor_leaves_copies(
    moto: Moto, tmp_path: Path, start_daemon: Any
) -> None:
    out = tmp_path / "out"
    path = out / "large.properties"
    cfg = write_yaml(
        tmp_path / "sync.yaml",
        {
            "aws": {"region": "us-east-1", "endpoint_url": moto.url},
            "poll": {"interval": "100ms", "jitter": 0},
            "metrics": {"listen": None},
            "outputs": [{"path": str(path), "secrets": [{"id": SECRET_ID}]}],
        },
    )
    versions = {0: version_map(0)}
    moto.create(SECRET_ID, versions[0])
    reader = Snapshots(path)
    reader.start()
    chaos = random.Random(20261128)
    try:
        for kill in range(1, KILLS + 1):
            # exec'd: the kill's window below is a real interpreter's start-up and write
            daemon = start_daemon(cfg, forked=False)
            versions[kill] = version_map(kill)
            moto.rotate(SECRET_ID, versions[kill])
            # the kill lands anywhere from start-up to the middle of this version's write
            chaos_pause = threading.Event()
            chaos_pause.wait(chaos.uniform(0.2, 1.2))  # the fault's timing, not a wait
            daemon.proc.kill()
            daemon.proc.wait(timeout=10)
            daemon.close()

        final = start_daemon(cfg)
        want = versions[KILLS]
        wait_until(lambda: path.exists() and parse(path.read_bytes()) == want, 60, "final sync")
        assert final.stop() < 10 and final.proc.returncode == 0
    finally:
        reader.stop.set()
        reader.join(timeout=10)

    assert reader.reads > 0
    expected = {tuple(sorted(m.items())) for m in versions.values()}
    for data in reader.seen.values():
        assert tuple(sorted(parse(data).items())) in expected, "a torn or mixed snapshot"
    assert sorted(p.name for p in out.iterdir()) == [
        ".large.properties.secretsync-lock",
        "large.properties",
    ]
