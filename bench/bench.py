"""secretsync benchmarks: figures side by side, measured in one run, against a local moto server.

    make bench                 # everything (about 14 minutes)
    .venv/bin/python -m bench.bench --quick     # fewer repetitions
    .venv/bin/python -m bench.bench --only startup,once     # some rows only

Each row compares secretsync with a baseline measured in the same run on the
same machine, as a ratio, with the goal it must meet. These are reports, not
tests: the test suite checks behaviour (call counts, imports), this prints
figures. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.configs import example_config, write_yaml
from tests.support.motoserver import moto_server

from bench.harness import (
    KAFKA_ID,
    SR_ID,
    Paired,
    cpu_s,
    kafka_value,
    log_events,
    paired,
    percentile,
    rss_mib,
    run_env,
    secrets_client,
    sr_value,
    wait_for,
)

REPO = Path(__file__).resolve().parent.parent
# secretsync as the image ships it: runtime dependencies only (make bench builds it)
PROD = Path(os.environ.get("SECRETSYNC_BENCH_VENV") or REPO / "bench" / ".venv-prod")
PROD_PYTHON = str(PROD / "bin" / "python")
SECRETSYNC = [str(PROD / "bin" / "secretsync")]
AWS_CLI = os.environ.get("AWS_CLI") or str(REPO / "bench" / ".venv-aws" / "bin" / "aws")
RAW_CLIENT = REPO / "bench" / "raw_client.py"
NAIVE = REPO / "bench" / "naive_poller.py"


@dataclass
class Row:
    measure: str
    ours: str
    baseline: str
    ratio: str
    goal: str
    ok: bool

    def cells(self) -> list[str]:
        return [
            self.measure,
            self.ours,
            self.baseline,
            self.ratio,
            self.goal,
            "yes" if self.ok else "NO",
        ]


@contextlib.contextmanager
def daemon(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*SECRETSYNC, "run", "-c", str(config), "--log-format", "json"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=run_env(),
        )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def seed(url: str) -> None:
    client = secrets_client(url)
    client.create_secret(Name=KAFKA_ID, SecretString=json.dumps(kafka_value()))
    client.create_secret(Name=SR_ID, SecretString=json.dumps(sr_value()))


# -- the rows ------------------------------------------------------------------------------


def startup(url: str, work: Path, runs: int) -> list[Row]:
    cfg = write_yaml(work / "startup.yaml", example_config(work / "out-startup", url))
    rows = []
    for label, argv, goal_s in (
        ("`secretsync --help`", [*SECRETSYNC, "--help"], 0.25),
        ("`secretsync check`", [*SECRETSYNC, "check", "-c", str(cfg)], 0.08),
    ):
        pair = paired(argv, [PROD_PYTHON, "-c", "pass"], runs)
        ours, python = pair.median_a, pair.median_b
        rows.append(
            Row(
                label,
                f"{ours:.3f} s (IQR {Paired.spread(pair.a)})",
                f"python -c pass {python:.3f} s",
                f"{ours / python:.1f}×",
                f"≤ {goal_s:g} s",
                ours <= goal_s,
            )
        )
    return rows


def ratio_row(measure: str, pair: Paired, goal: float | None, goal_text: str = "") -> Row:
    """A row from paired runs: medians with their interquartile ranges, the paired ratio."""
    ratio = pair.ratio
    return Row(
        measure,
        f"{pair.median_a:.3f} s (IQR {Paired.spread(pair.a)})",
        f"{pair.median_b:.3f} s (IQR {Paired.spread(pair.b)})",
        f"{ratio:.2f}× (IQR {pair.ratio_spread()}, {len(pair.a)} pairs)",
        goal_text or f"≤ {goal:g}×",
        goal is None or ratio <= goal,
    )


def aws_cli_get(url: str) -> list[str]:
    """The yardstick: one `aws secretsmanager get-secret-value` of the Kafka secret."""
    return [AWS_CLI, "secretsmanager", "get-secret-value", "--secret-id", KAFKA_ID,
            "--endpoint-url", url, "--region", "us-east-1", "--output", "json"]  # fmt: skip


def once_vs_cli(url: str, work: Path, runs: int) -> Row:
    cfg = write_yaml(work / "once.yaml", example_config(work / "out-once", url))
    pair = paired([*SECRETSYNC, "once", "-c", str(cfg)], aws_cli_get(url), runs)
    return ratio_row(
        "`once` (2 secrets, 3 files) vs one `aws secretsmanager get-secret-value`", pair, 1.15
    )


def raw_floor(url: str) -> list[str]:
    """aioboto3 alone: Describe + Get (pinned) of the example's 2 secrets, nothing else."""
    return [PROD_PYTHON, str(RAW_CLIENT), url, "2", "2", "example"]


def once_vs_floor(url: str, work: Path, runs: int) -> Row:
    cfg = write_yaml(work / "once-floor.yaml", example_config(work / "out-once-floor", url))
    pair = paired([*SECRETSYNC, "once", "-c", str(cfg)], raw_floor(url), runs)
    return ratio_row(
        "`once` (2 secrets, 3 files) vs raw aioboto3 Describe+Get of the same secrets", pair, 1.05
    )


def floor_vs_cli(url: str, runs: int) -> Row:
    """What the client stack alone costs: aioboto3 Describe+Get of the 2 secrets, nothing else."""
    pair = paired(raw_floor(url), aws_cli_get(url), runs)
    return ratio_row(
        "(reference) raw aioboto3 Describe+Get of the 2 secrets vs the AWS CLI",
        pair,
        None,
        "the client stack's own floor",
    )


def once_vs_naive(url: str, work: Path, runs: int) -> Row:
    cfg = write_yaml(work / "naive.yaml", example_config(work / "out-naive", url))
    naive = [sys.executable, str(NAIVE), url, str(work / "out-naive-script"), "1"]  # boto3
    pair = paired([*SECRETSYNC, "once", "-c", str(cfg)], naive, runs)
    return ratio_row(
        "`once` vs a naive boto3 script (GetSecretValue of every secret, write files)",
        pair,
        None,
        "none: a reference (the script reads every value every poll; see the next row)",
    )


def steady_state_calls(url: str, work: Path, polls: int) -> list[Row]:
    from tests.support.faultproxy import FaultProxy  # noqa: PLC0415

    proxy = FaultProxy(url).start()
    try:
        cfg = write_yaml(
            work / "calls.yaml",
            example_config(work / "out-calls", proxy.url, poll={"interval": "200ms", "jitter": 0}),
        )
        log = work / "calls.log"
        with daemon(cfg, log):
            wait_for((work / "out-calls" / "combined.properties").exists, 60, "sync")
            proxy.reset_counts()
            wait_for(lambda: proxy.count("DescribeSecret") >= 2 * polls, 120, "polls")
            describes, gets = proxy.count("DescribeSecret"), proxy.count("GetSecretValue")
        done = describes // 2
        naive_proxy_calls = 2  # the naive script: one GetSecretValue per secret per poll
        return [
            Row(
                "API calls per unchanged poll (2 unique secrets, 3 outputs)",
                f"{describes / done:.1f} DescribeSecret, {gets} GetSecretValue in {done} polls",
                f"naive: {naive_proxy_calls} GetSecretValue",
                "—",
                "1 DescribeSecret per unique secret, 0 GetSecretValue",
                describes / done == 2 and gets == 0,
            ),
        ]
    finally:
        proxy.stop()


def idle(url: str, work: Path, seconds: float) -> list[Row]:
    cfg = write_yaml(
        work / "idle.yaml",
        example_config(work / "out-idle", url, poll={"interval": "30s", "jitter": 0.1}),
    )
    with daemon(cfg, work / "idle.log") as proc:
        wait_for((work / "out-idle" / "combined.properties").exists, 60, "sync")
        time.sleep(3)  # settle after the first sync before sampling
        cpu0, t0, peak = cpu_s(proc.pid), time.monotonic(), 0.0
        while time.monotonic() - t0 < seconds:
            peak = max(peak, rss_mib(proc.pid))
            time.sleep(0.5)  # sampling period
        per_10min = (cpu_s(proc.pid) - cpu0) / (time.monotonic() - t0) * 600
    return [
        Row("idle RSS of `run`, 2 secrets", f"{peak:.1f} MiB", "—", "—", "≤ 58 MiB", peak <= 58),
        Row(
            "idle CPU at a 30 s interval",
            f"{per_10min:.2f} CPU-s / 10 min",
            "—",
            "—",
            "≤ 0.3 CPU-s / 10 min",
            per_10min <= 0.3,
        ),
    ]


def rotations_rss(url: str, work: Path, rotations: int) -> Row:
    """RSS growth of `run` over many rotations of a 20 KB secret (a leak shows here)."""
    cfg = write_yaml(
        work / "leak.yaml",
        example_config(work / "out-leak", url, poll={"interval": "100ms", "jitter": 0}),
    )
    client = secrets_client(url)
    target = work / "out-leak" / "client.properties"
    padding = "p" * 20_000  # the secret is ≈ 20 KB; the output copies only its named keys

    def rotate(n: int) -> None:
        value = {**kafka_value(n), "padding": padding}
        client.put_secret_value(SecretId=KAFKA_ID, SecretString=json.dumps(value))
        needle = f"bench-password-{n}".encode()
        wait_for(lambda: needle in target.read_bytes(), 30, "rotation written")

    warmup = 50
    with daemon(cfg, work / "leak.log") as proc:
        wait_for(target.exists, 60, "sync")
        for n in range(2000, 2000 + warmup):
            rotate(n)
        before = rss_mib(proc.pid)
        for n in range(3000, 3000 + rotations):
            rotate(n)
        after = rss_mib(proc.pid)
    growth = after - before
    return Row(
        f"RSS growth of `run` over {rotations} rotations of a 20 KB secret (after {warmup})",
        f"{growth:+.1f} MiB ({before:.1f} → {after:.1f} MiB)",
        "—",
        "—",
        "≤ +1 MiB",
        growth <= 1.0,
    )


def propagation(url: str, work: Path, rotations: int) -> Row:
    interval_s = 2.0
    cfg = write_yaml(
        work / "prop.yaml",
        example_config(work / "out-prop", url, poll={"interval": f"{interval_s}s", "jitter": 0.1}),
    )
    client = secrets_client(url)
    target = work / "out-prop" / "client.properties"
    latencies = []
    with daemon(cfg, work / "prop.log"):
        wait_for(target.exists, 60, "sync")
        for n in range(1, rotations + 1):
            time.sleep(random.uniform(0.0, interval_s))  # rotations land anywhere in a cycle
            needle = f"bench-password-{n}".encode()
            started = time.monotonic()
            client.put_secret_value(SecretId=KAFKA_ID, SecretString=json.dumps(kafka_value(n)))
            wait_for(lambda nd=needle: nd in target.read_bytes(), 30, "propagation")
            latencies.append(time.monotonic() - started)
    p50, p99, worst = (percentile(latencies, 0.5), percentile(latencies, 0.99), max(latencies))
    return Row(
        f"rotation → file at a {interval_s:g} s interval ({rotations} rotations)",
        f"p50 {p50:.2f} s, p99 {p99:.2f} s, max {worst:.2f} s",
        "—",
        "—",
        f"max ≤ interval + 1 s = {interval_s + 1:g} s",
        worst <= interval_s + 1,
    )


def push_propagation(url: str, work: Path, rotations: int) -> Row:
    """Rotation → file with push refresh at a 10-minute poll interval.

    The EventBridge event is played by sending its body to the instance's
    queue right after the rotation, as EventBridge → SQS delivers it.
    """
    import boto3  # noqa: PLC0415

    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=url)
    queue = sqs.create_queue(QueueName="secretsync-bench")["QueueUrl"]
    cfg = write_yaml(
        work / "push.yaml",
        example_config(
            work / "out-push",
            url,
            poll={"interval": "10m", "jitter": 0.1},
            push={"sqs_queue_url": queue, "endpoint_url": url, "wait": "20s"},
        ),
    )
    client = secrets_client(url)
    arn = client.describe_secret(SecretId=KAFKA_ID)["ARN"]
    event = json.dumps(
        {
            "source": "aws.secretsmanager",
            "detail-type": "Secret Label Updated",
            "resources": [arn],
            "detail": {},
        }
    )
    target = work / "out-push" / "client.properties"
    latencies = []
    log = work / "push.log"
    with daemon(cfg, log):
        wait_for(target.exists, 60, "sync")
        wait_for(
            lambda: any(e.get("event") == "push_listening" for e in log_events(log)), 60, "push"
        )
        for n in range(1000, 1000 + rotations):
            time.sleep(random.uniform(0.0, 1.0))
            needle = f"bench-password-{n}".encode()
            started = time.monotonic()
            client.put_secret_value(SecretId=KAFKA_ID, SecretString=json.dumps(kafka_value(n)))
            sqs.send_message(QueueUrl=queue, MessageBody=event)
            wait_for(lambda nd=needle: nd in target.read_bytes(), 60, "push propagation")
            latencies.append(time.monotonic() - started)
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    return Row(
        f"rotation → file with push, at a 10 min poll interval ({rotations} rotations)",
        f"p50 {p50:.2f} s, p99 {p99:.2f} s",
        "—",
        "—",
        "p99 ≤ 2 s",
        p99 <= 2.0,
    )


def kafka_first_auth(url: str, work: Path, rotations: int) -> Row:
    """Rotation → the broker's first successful authentication with the new key."""
    from bench.kafka_auth import (  # noqa: PLC0415 (Maven, a broker, JVMs: only here)
        POLL_INTERVAL_S,
        REAUTH_MS,
        first_auth_latencies,
        summary,
    )

    polling, push, _ = first_auth_latencies(url, work, rotations, daemon)
    reauth_s = REAUTH_MS / 1000
    poll_goal = POLL_INTERVAL_S + reauth_s + 1
    push_goal = reauth_s + 2
    return Row(
        f"rotation → first authentication with the new key at a Kafka broker "
        f"(re-authentication every {reauth_s:g} s; {rotations} rotations each)",
        f"polling at {POLL_INTERVAL_S:g} s: {summary(polling)}; push: {summary(push)}",
        "—",
        "—",
        f"p99 ≤ interval + re-auth + 1 s = {poll_goal:g} s; push p99 ≤ re-auth + 2 s = "
        f"{push_goal:g} s",
        percentile(polling, 0.99) <= poll_goal and percentile(push, 0.99) <= push_goal,
    )


def scale(url: str, work: Path, count: int, runs: int) -> Row:
    client = secrets_client(url)
    names = [f"bench/scale/{n:04d}" for n in range(count)]
    for name in names:
        client.create_secret(Name=name, SecretString=json.dumps(kafka_value()))
    data = {
        "aws": {"region": "us-east-1", "endpoint_url": url},
        "metrics": {"listen": None},
        "outputs": [
            {"path": str(work / "out-scale" / f"{n:04d}.properties"), "secrets": [{"id": name}]}
            for n, name in enumerate(names)
        ],
    }
    cfg = write_yaml(work / "scale.yaml", data)
    raw = [PROD_PYTHON, str(RAW_CLIENT), url, str(count), "16"]

    out, done = work / "out-scale", work / "out-scale-done"
    done.mkdir()
    runs_done = itertools.count()

    def clear() -> None:
        # Every run of `once` writes every file into an empty directory, as an init
        # container's fresh volume is. The last run's files are moved aside, not
        # deleted: a journal-less ext4 (this machine class's) skips inodes freed in the
        # last ~30 s at each file it creates (`recently_deleted`), so deleting 1,000
        # files just before the run charged the bench's own clean-up to `once`
        # (≈ 0.6 s of system time on the loop, ≈ 8 % of the row).
        if out.exists():
            out.rename(done / str(next(runs_done)))

    try:
        pair = paired([*SECRETSYNC, "once", "-c", str(cfg)], raw, runs, before=clear)
    finally:
        shutil.rmtree(done)  # after the last pair: its deletions land on no run
    return ratio_row(
        f"`once` over {count} secrets ({count} files) vs raw aioboto3 Describe+Get, concurrency 16",
        pair,
        1.1,
    )


ROWS = ("startup", "once", "floor", "naive", "calls", "idle", "rotations", "propagation",
        "push", "kafka", "scale")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument(
        "--only",
        type=lambda text: text.split(","),
        default=list(ROWS),
        help=f"comma-separated rows to run (default all): {','.join(ROWS)}",
    )
    args = parser.parse_args()
    unknown = set(args.only) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows: {','.join(sorted(unknown))} (known: {','.join(ROWS)})")
    only = set(args.only)
    runs = 3 if args.quick else 7
    # the ratio rows that decide a goal: enough interleaved pairs for a stable median
    ratio_runs = 5 if args.quick else 15
    # the sub-second ones: a pair of ≈ 0.5 s runs spreads ±7% on a shared 2-CPU machine,
    # and their goals sit ≈ 5% above the client stack's floor; 41 pairs cost ≈ 40 s a row
    # and cut the median's error by ≈ 40 % against 15
    short_runs = 9 if args.quick else 41
    for needed, what in ((AWS_CLI, "AWS CLI"), (SECRETSYNC[0], "secretsync venv")):
        if not Path(needed).exists():
            print(f"bench: no {what} at {needed} (run `make bench`)", file=sys.stderr)
            return 2
    os.environ.update(run_env())
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="secretsync-bench-") as tmp, moto_server() as url:
        work = Path(tmp)
        seed(url)
        if "startup" in only:
            rows += startup(url, work, ratio_runs)
        if "once" in only:
            rows.append(once_vs_cli(url, work, short_runs))
            rows.append(once_vs_floor(url, work, short_runs))
        if "floor" in only:
            rows.append(floor_vs_cli(url, short_runs))
        if "naive" in only:
            rows.append(once_vs_naive(url, work, runs))
        if "calls" in only:
            rows += steady_state_calls(url, work, polls=10)
        if "idle" in only:
            rows += idle(url, work, seconds=20 if args.quick else 60)
        if "rotations" in only:
            rows.append(rotations_rss(url, work, rotations=200 if args.quick else 1000))
        if "propagation" in only:
            rows.append(propagation(url, work, rotations=5 if args.quick else 20))
        if "push" in only:
            rows.append(push_propagation(url, work, rotations=5 if args.quick else 20))
        if "kafka" in only:
            rows.append(kafka_first_auth(url, work, rotations=5 if args.quick else 20))
        if "scale" in only:
            # as many pairs as the other ratio rows: its pairs' ratios spread ±9% on a
            # shared 2-CPU machine, and the median of 7 moved by as much between runs
            rows.append(scale(url, work, count=200 if args.quick else 1000, runs=ratio_runs))
    print_table(rows)
    return 0 if all(row.ok for row in rows) else 1


def print_table(rows: list[Row]) -> None:
    uname = platform.uname()
    print(
        f"\nsecretsync bench, {time.strftime('%Y-%m-%d')}, {uname.machine}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}\n"
    )
    header = ["measure", "secretsync", "baseline", "ratio", "goal", "met"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row.cells()) + " |")


if __name__ == "__main__":
    sys.exit(main())
