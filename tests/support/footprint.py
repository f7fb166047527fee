"""Measure the daemon's memory and CPU against a local moto server (sizes the k8s/ECS limits).

    .venv/bin/python -m tests.support.footprint [--seconds 60] [--interval 1s] [--rotate-every 5]

Starts moto on 127.0.0.1, seeds the two example secrets, runs ``secretsync run``
with sync.yaml.example (outputs in a temp dir, poll interval ``--interval``,
default 1s: 30x the example's rate), rotates one secret every ``--rotate-every``
seconds so renders, writes and fsyncs are included, and samples the daemon's
/proc/<pid>/status (VmRSS, VmHWM) and /proc/<pid>/stat (utime+stime). Prints
one JSON line. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support import testenv
from tests.support.configs import example_config, write_yaml
from tests.support.motoserver import Moto, free_port, moto_server
from tests.support.seeds import KAFKA_ID, kafka_secret
from tests.support.wait import wait_until

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _cpu_s(pid: int) -> float:
    # fields after the command name (which may contain spaces): utime is 14th, stime 15th
    rest = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--rotate-every", type=float, default=5)
    args = parser.parse_args()

    # dummy AWS credentials in os.environ, inherited by the children
    testenv.isolate()
    daemon: subprocess.Popen[bytes] | None = None
    with moto_server() as url:
        try:
            moto = Moto(url)
            moto.seed_use_case()
            work = Path(tempfile.mkdtemp(prefix="secretsync-footprint-"))
            data = example_config(
                work,
                url,
                poll={"interval": args.interval, "jitter": 0},
                metrics={"listen": f"127.0.0.1:{free_port()}"},
            )
            cfg = write_yaml(work / "sync.yaml", data)
            daemon = subprocess.Popen(
                [sys.executable, "-m", "secretsync", "run", "-c", str(cfg), "--log-format", "json"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            pid = daemon.pid
            wait_until((work / "combined.properties").exists, 30, "first sync")
            cpu_start, started = _cpu_s(pid), time.monotonic()
            rss_first_kib = _kib(pid, "VmRSS")
            rss_max_kib, rotations, next_rotation = 0, 0, started + args.rotate_every
            while (now := time.monotonic()) < started + args.seconds:
                rss_max_kib = max(rss_max_kib, _kib(pid, "VmRSS"))
                if now >= next_rotation:
                    rotations += 1
                    moto.rotate(KAFKA_ID, kafka_secret(password=f"footprint-{rotations}"))
                    next_rotation += args.rotate_every
                time.sleep(0.2)  # sampling period, not a wait for a condition
            elapsed_s = time.monotonic() - started
            cpu_s = _cpu_s(pid) - cpu_start
            print(
                json.dumps(
                    {
                        "seconds": round(elapsed_s, 1),
                        "poll_interval": args.interval,
                        "rotations": rotations,
                        "rss_after_first_sync_mib": round(rss_first_kib / 1024, 1),
                        "rss_max_mib": round(rss_max_kib / 1024, 1),
                        "rss_peak_hwm_mib": round(_kib(pid, "VmHWM") / 1024, 1),
                        "cpu_avg_millicores": round(1000 * cpu_s / elapsed_s, 1),
                    }
                )
            )
        finally:
            if daemon is not None and daemon.poll() is None:
                daemon.terminate()
                daemon.wait(timeout=10)


if __name__ == "__main__":
    main()
