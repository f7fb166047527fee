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
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
import yaml

from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
KAFKA_ID = "/confluent_cloud_resource/kafka_cluster/java_client"
SR_ID = "/confluent_cloud_resource/schema_registry_cluster/java_client"
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--rotate-every", type=float, default=5)
    args = parser.parse_args()

    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1",
    }
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    daemon: subprocess.Popen[bytes] | None = None
    try:

        def moto_up() -> bool:
            try:
                with urllib.request.urlopen(url + "/moto-api/", timeout=1):
                    return True
            except OSError:
                return False

        wait_until(moto_up, 30, "moto")
        client = boto3.client(
            "secretsmanager",
            region_name="us-east-1",
            endpoint_url=url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        kafka = {"sasl.jaas.config": "x required;", "bootstrap.servers": "b:9092"}
        client.create_secret(Name=KAFKA_ID, SecretString=json.dumps(kafka))
        client.create_secret(
            Name=SR_ID,
            SecretString=json.dumps(
                {
                    "basic.auth.credentials.source": "USER_INFO",
                    "basic.auth.user.info": "k:s",
                    "schema.registry.url": "https://sr.example",
                }
            ),
        )
        work = Path(tempfile.mkdtemp(prefix="secretsync-footprint-"))
        data = yaml.safe_load((REPO / "sync.yaml.example").read_text())
        data["aws"] = {"region": "us-east-1", "endpoint_url": url}
        data["poll"] = {"interval": args.interval, "jitter": 0}
        data["metrics"] = {"listen": f"127.0.0.1:{_free_port()}"}
        data["notify"] = {}
        for out in data["outputs"]:
            out["path"] = str(work / Path(out["path"]).name)
            out.pop("notify", None)
        cfg = work / "sync.yaml"
        cfg.write_text(yaml.safe_dump(data))
        daemon = subprocess.Popen(
            [sys.executable, "-m", "secretsync", "run", "-c", str(cfg), "--log-format", "json"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
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
                kafka["bootstrap.servers"] = f"b{rotations}:9092"
                client.put_secret_value(SecretId=KAFKA_ID, SecretString=json.dumps(kafka))
                next_rotation += args.rotate_every
            time.sleep(0.2)  # sampling period, not a wait for a condition
        elapsed_s = time.monotonic() - started
        print(
            json.dumps(
                {
                    "seconds": round(elapsed_s, 1),
                    "poll_interval": args.interval,
                    "rotations": rotations,
                    "rss_after_first_sync_mib": round(rss_first_kib / 1024, 1),
                    "rss_max_mib": round(rss_max_kib / 1024, 1),
                    "rss_peak_hwm_mib": round(_kib(pid, "VmHWM") / 1024, 1),
                    "cpu_avg_millicores": round(1000 * (_cpu_s(pid) - cpu_start) / elapsed_s, 1),
                }
            )
        )
    finally:
        for proc in (daemon, moto):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)


if __name__ == "__main__":
    main()
