"""Where the memory and the start-up go: VmRSS after each import step, and the slowest imports.

    bench/.venv-prod/bin/python -m bench.imports [--steps STEP,...] [--tracemalloc]

Run from the repository root with the prod venv's Python (what the image holds:
requirements.lock and the project), so the numbers are the product's, not the
test tools'. Each step is imported in order in one fresh interpreter, and the
process's VmRSS (``/proc/self/smaps_rollup`` Rss) is read after each; the last
step builds a Secrets Manager client the way the daemon does. ``--tracemalloc``
also shows the Python allocations of the top files. Then ``-X importtime`` of
``secretsync.runtime.once`` prints its ten slowest modules (cumulative).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

STEPS = [
    ("python + asyncio (+ ssl)", "import asyncio, ssl"),
    ("pyyaml", "import yaml"),
    ("secretsync.config", "import secretsync.config.model"),
    ("structlog, prometheus_client", "import structlog, prometheus_client"),
    ("botocore", "import botocore.session"),
    ("aiohttp", "import aiohttp"),
    (
        "aiobotocore, javaproperties, runtime, server",
        "import aiobotocore.session, javaproperties, secretsync.runtime.run, "
        "secretsync.serve.server",
    ),
    ("Secrets Manager client built", "CLIENT"),
]

CHILD = r"""
import json, sys, time
steps = json.loads(sys.argv[1])
trace = sys.argv[2] == "1"
if trace:
    import tracemalloc
    tracemalloc.start()
def rss():
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Rss:"):
            return int(line.split()[1]) / 1024
out = [("start", 0.0, rss())]
for name, code in steps:
    t = time.perf_counter()
    if code == "CLIENT":
        import asyncio
        from secretsync.source.secretsmanager import SecretsManagerSource
        async def build():
            source = SecretsManagerSource(
                region="us-east-1", endpoint_url="http://127.0.0.1:1", call_timeout_s=1
            )
            async with source:
                pass
        asyncio.run(build())
    else:
        exec(code)
    out.append((name, time.perf_counter() - t, rss()))
print(json.dumps(out))
if trace:
    snap = tracemalloc.take_snapshot()
    for stat in snap.statistics("filename")[:15]:
        mib = stat.size / 1024 / 1024
        print(f"  {mib:6.2f} MiB  {stat.traceback[0].filename}", file=sys.stderr)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(STEPS), "1" if args.tracemalloc else "0"],
        check=True,
        capture_output=True,
        text=True,
        env={
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "PATH": "/usr/bin:/bin",
            **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
        },
    )
    rows = json.loads(done.stdout)
    print("| step | ms | +MiB | total MiB |\n|---|---|---|---|")
    last = rows[0][2]
    print(f"| python (bare) | | | {last:.1f} |")
    for name, seconds, total in rows[1:]:
        print(f"| {name} | {seconds * 1000:.0f} | {total - last:.1f} | {total:.1f} |")
        last = total
    if done.stderr:
        print("\ntracemalloc, top files after the last step:\n" + done.stderr)
    times = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import secretsync.runtime.once"],
        check=True,
        capture_output=True,
        text=True,
    ).stderr.splitlines()
    parsed = []
    for line in times:
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[0].strip().isdigit():
            parsed.append((int(parts[1]), int(parts[0]), parts[2].rstrip()))
    print("\n-X importtime secretsync.runtime.once, slowest (cumulative ms):")
    for cumulative, _self, name in sorted(parsed, reverse=True)[:12]:
        print(f"  {cumulative / 1000:7.1f}  {name}")


if __name__ == "__main__":
    main()
