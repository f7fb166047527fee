"""What every benchmark needs: a local moto server (tests.support.motoserver), the example
config (tests.support.configs), timing, sampling.

Only loopback is used. Dummy AWS credentials are set for this process and the
commands it starts; nothing reads a real AWS profile.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.seeds import REGION

ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_SESSION_TOKEN": "bench",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")
KAFKA_ID = "/confluent_cloud_resource/kafka_cluster/java_client"
SR_ID = "/confluent_cloud_resource/schema_registry_cluster/java_client"


def wait_for(predicate: Callable[..., object], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` every 10 ms until it is true; raise after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.01)


def secrets_client(url: str) -> Any:
    import boto3  # noqa: PLC0415

    return boto3.client("secretsmanager", region_name=REGION, endpoint_url=url)


def kafka_value(n: int = 0) -> dict[str, str]:
    return {
        "sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="BENCHKEY{n}" password="bench-password-{n}";'
        ),
        "bootstrap.servers": "pkc-bench.us-east-1.aws.confluent.cloud:9092",
    }


def sr_value(n: int = 0) -> dict[str, str]:
    return {
        "basic.auth.credentials.source": "USER_INFO",
        "basic.auth.user.info": f"SRKEY:bench-sr-{n}",
        "schema.registry.url": "https://psrc-bench.us-east-1.aws.confluent.cloud",
    }


def run_env() -> dict[str, str]:
    return {**os.environ, **ENV}


def wall_s(argv: Sequence[str], *, check: bool = True) -> float:
    """Wall time of one run of ``argv`` (stdout and stderr discarded)."""
    started = time.perf_counter()
    result = subprocess.run(argv, env=run_env(), capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if check and result.returncode != 0:
        raise RuntimeError(f"{argv[:3]} exited {result.returncode}: {result.stderr[-500:]!r}")
    return elapsed


@dataclass(frozen=True)
class Paired:
    """Interleaved runs of two commands: each side's median and spread, and the ratio.

    The ratio is the median of the per-pair ratios (a run of a over the run of b
    next to it), so a slow spell of the shared machine lands on both sides of
    the pairs it touches instead of on one side's median.
    """

    a: tuple[float, ...]
    b: tuple[float, ...]

    @property
    def median_a(self) -> float:
        return statistics.median(self.a)

    @property
    def median_b(self) -> float:
        return statistics.median(self.b)

    @property
    def ratio(self) -> float:
        return statistics.median(x / y for x, y in zip(self.a, self.b, strict=True))

    @staticmethod
    def spread(values: Sequence[float]) -> str:
        """The interquartile range of ``values`` as "q1–q3" seconds."""
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        return f"{q1:.3f}–{q3:.3f}"

    def ratio_spread(self) -> str:
        return self.spread([x / y for x, y in zip(self.a, self.b, strict=True)])


def paired(
    a: Sequence[str], b: Sequence[str], runs: int, before: Callable[[], None] | None = None
) -> Paired:
    """``runs`` pairs of runs after one warm-up of each; ``before`` runs before each run.

    The pairs alternate their order (a then b, b then a, …): what one run leaves
    behind for the next (write-back of the files it wrote, a warmed cache) falls
    on each side as often as on the other (within one pair), instead of always on b.
    """

    def timed(argv: Sequence[str]) -> float:
        if before:
            before()
        return wall_s(argv)

    timed(a)
    timed(b)
    times_a, times_b = [], []
    for n in range(runs):
        if n % 2:
            times_b.append(timed(b))
            times_a.append(timed(a))
        else:
            times_a.append(timed(a))
            times_b.append(timed(b))
    return Paired(tuple(times_a), tuple(times_b))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise KeyError("VmRSS")


def cpu_s(pid: int) -> float:
    rest = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def log_events(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return events
