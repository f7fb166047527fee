"""syncer.py: check → fetch → render → write, against an in-memory store and real files.

The store is in memory (tests/support/memsource.py) so these run fast; the
same paths against moto over HTTP are in tests/sync/test_integration.py.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from secretsync import logs
from secretsync.config.model import parse_config
from secretsync.state import WrittenFile
from tests.support.harness import FakeClock, UpperBound, config_data, make_config, seeded_source
from tests.support.memsource import NOT_FOUND, SERVER_ERROR, THROTTLED, MemorySource
from tests.support.seeds import (
    CANARY_PASSWORD,
    CANARY_SR_SECRET,
    KAFKA_ID,
    SR_ID,
    kafka_secret,
    sr_secret,
)


def stat_of(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns


def outputs_in(directory: Path) -> list[str]:
    """The visible files of an output directory (our lock files are hidden and expected)."""
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


class Recorder:
    """A NotifySink that keeps what it was given."""

    def __init__(self) -> None:
        self.batches: list[list[WrittenFile]] = []

    def submit(self, written: Sequence[WrittenFile]) -> None:
        self.batches.append(list(written))


async def test_steady_state_costs_one_describe_per_secret_and_no_fetch(
    tmp_path: Path, make_rig: Any
) -> None:
    r = make_rig(make_config(tmp_path), seeded_source())
    first = await r.syncer.cycle()
    assert len(first.files_written) == 3
    assert (r.source.count("DescribeSecret"), r.source.count("GetSecretValue")) == (2, 2)
    files = [tmp_path / n for n in outputs_in(tmp_path)]
    before = [stat_of(p) for p in files]
    r.source.reset_counts()

    for _ in range(3):
        report = await r.syncer.cycle()
        assert report.files_written == [] and report.errors == 0

    assert r.source.count("DescribeSecret") == 3 * 2  # 2 unique secrets shared by 3 outputs
    assert r.source.count("GetSecretValue") == 0
    assert [stat_of(p) for p in files] == before
    assert r.syncer.all_current()


async def test_a_rotation_costs_one_fetch_pinned_to_the_new_version(
    tmp_path: Path, make_rig: Any
) -> None:
    r = make_rig(make_config(tmp_path), seeded_source())
    await r.syncer.cycle()
    sr_before = stat_of(tmp_path / "schema-registry.properties")
    r.source.reset_counts()

    new_version = r.source.put(KAFKA_ID, kafka_secret(password="CANARY-next"))
    report = await r.syncer.cycle()

    assert report.secrets_changed == [KAFKA_ID]
    assert sorted(w.path.name for w in report.files_written) == [
        "client.properties",
        "combined.properties",
    ]
    assert r.source.fetched == [(KAFKA_ID, new_version)]
    assert r.source.count("DescribeSecret") == 2
    assert "CANARY-next" in (tmp_path / "combined.properties").read_text()
    assert stat_of(tmp_path / "schema-registry.properties") == sr_before


async def test_files_of_a_pass_reach_the_notifier_together_after_every_write(
    tmp_path: Path, make_rig: Any
) -> None:
    sink = Recorder()
    r = make_rig(make_config(tmp_path), seeded_source(), notifier=sink)
    await r.syncer.cycle()
    assert len(sink.batches) == 1 and len(sink.batches[0]) == 3
    await r.syncer.cycle()
    assert len(sink.batches) == 1  # nothing changed: nothing submitted


@pytest.mark.parametrize(
    "bad_value",
    ["CANARY-not-json", {"bootstrap.servers": "b:9092"}],
    ids=["not-json", "missing-key"],
)
async def test_a_malformed_secret_keeps_the_last_good_file(
    tmp_path: Path, make_rig: Any, log_buffer: io.StringIO, bad_value: object
) -> None:
    r = make_rig(make_config(tmp_path), seeded_source())
    await r.syncer.cycle()
    good = (tmp_path / "client.properties").read_bytes()

    r.source.put(KAFKA_ID, bad_value)
    report = await r.syncer.cycle()

    assert report.errors == 2  # client.properties and combined.properties
    assert (tmp_path / "client.properties").read_bytes() == good
    path = str(tmp_path / "client.properties")
    assert r.sample("secretsync_sync_errors_total", path=path, reason="render") == 1
    assert not r.syncer.all_current()

    # the other outputs carry on: a Schema Registry rotation still lands
    r.source.put(SR_ID, sr_secret(secret="CANARY-sr-2"))
    await r.syncer.cycle()
    assert "CANARY-sr-2" in (tmp_path / "schema-registry.properties").read_text()
    text = log_buffer.getvalue()
    assert "output_failed" in text
    for canary in ("CANARY-not-json", CANARY_PASSWORD, CANARY_SR_SECRET, "CANARY-sr-2"):
        assert canary not in text

    # and a fixed secret recovers the file
    r.source.put(KAFKA_ID, kafka_secret(password="CANARY-fixed"))
    await r.syncer.cycle()
    assert "CANARY-fixed" in (tmp_path / "client.properties").read_text()
    assert r.syncer.all_current()


HOSTILE = '{"note":"CANARY-x\\ud800y", "token": "tok\'en-CANARY-q"}'  # valid JSON, lone surrogate


async def test_a_hostile_secret_costs_only_its_own_outputs(
    tmp_path: Path, make_rig: Any, log_buffer: io.StringIO
) -> None:
    hostile_id = "team/hostile"
    data = config_data(tmp_path)
    for name, fmt in (("hostile.json", "json"), ("hostile.env", "env")):
        data["outputs"].append(
            {"path": str(tmp_path / name), "format": fmt, "secrets": [{"id": hostile_id}]}
        )
    config = parse_config(data)
    store = seeded_source()
    store.put(hostile_id, {"note": "harmless", "token": "tok-CANARY-q"})
    sink = Recorder()
    r = make_rig(config, store, notifier=sink)
    await r.syncer.cycle()
    good = {n: (tmp_path / n).read_bytes() for n in ("hostile.json", "hostile.env")}

    store.put(hostile_id, HOSTILE)
    store.put(KAFKA_ID, kafka_secret(password="CANARY-rotated-together"))
    report = await r.syncer.cycle()

    # the hostile outputs keep their last good files; every other output is written…
    assert report.errors == 2
    assert {n: (tmp_path / n).read_bytes() for n in good} == good
    assert "CANARY-rotated-together" in (tmp_path / "client.properties").read_text()
    # …and handed to the notifier
    assert sorted(w.path.name for w in sink.batches[-1]) == [
        "client.properties",
        "combined.properties",
    ]
    for name in good:
        path = str(tmp_path / name)
        assert r.sample("secretsync_sync_errors_total", path=path, reason="render") == 1
        assert hostile_id in (r.syncer.outputs[tmp_path / name].error or "")
    text = log_buffer.getvalue()
    assert "Traceback" not in text
    for leak in ("CANARY-x", "tok'en", "CANARY-q", "\\ud800", "CANARY-rotated"):
        assert leak not in text, leak


async def test_the_redactor_keeps_only_the_versions_held(tmp_path: Path, make_rig: Any) -> None:
    r = make_rig(make_config(tmp_path), seeded_source())
    await r.syncer.cycle()
    baseline = logs.redacted_count()
    for n in range(200):
        # a large secret rotated many times: each version replaces the one before
        r.source.put(KAFKA_ID, kafka_secret(password=f"CANARY-{n:04d}-" + "x" * 20_000))
        await r.syncer.cycle()
    assert logs.redacted_count() <= baseline + 10
    jaas = kafka_secret(password="CANARY-0199-" + "x" * 20_000)["sasl.jaas.config"]
    assert logs.scrub(f"<{jaas}>") == f"<{logs.MASK}>"


async def test_a_deleted_secret_keeps_the_file_and_is_retried_each_cycle(
    tmp_path: Path, make_rig: Any
) -> None:
    r = make_rig(make_config(tmp_path), seeded_source())
    await r.syncer.cycle()
    good = (tmp_path / "client.properties").read_bytes()
    r.source.fail(KAFKA_ID, ("SecretDeleted", "secret is scheduled for deletion", False))
    r.source.reset_counts()

    await r.syncer.cycle()
    await r.syncer.cycle()

    assert (tmp_path / "client.properties").read_bytes() == good
    assert r.source.count("DescribeSecret") == 4  # permanent: retried at the normal cadence
    error = r.syncer.secrets[KAFKA_ID].error
    assert error is not None and error.code == "SecretDeleted"
    path = str(tmp_path / "client.properties")
    assert r.sample("secretsync_sync_errors_total", path=path, reason="fetch") == 2


async def test_a_secret_that_does_not_exist_fails_only_its_outputs(
    tmp_path: Path, make_rig: Any
) -> None:
    store = MemorySource()
    store.put(SR_ID, sr_secret())  # the Kafka secret is never created
    r = make_rig(make_config(tmp_path), store)

    report = await r.syncer.cycle()

    assert [w.path.name for w in report.files_written] == ["schema-registry.properties"]
    assert report.errors == 2
    assert not (tmp_path / "client.properties").exists()
    assert sorted(r.syncer.not_ready()) == sorted(
        str(tmp_path / n) for n in ("client.properties", "combined.properties")
    )
    assert r.syncer.secrets[KAFKA_ID].error.code == NOT_FOUND[0]


async def test_transient_errors_back_off_per_secret_and_reset_on_success(
    tmp_path: Path, make_rig: Any
) -> None:
    clock = FakeClock()
    r = make_rig(make_config(tmp_path), seeded_source(), clock=clock, rng=UpperBound())
    r.source.fail(None, THROTTLED)
    await r.syncer.cycle()
    # first failure: full jitter over [0, 2s]; UpperBound picks 2s
    assert all(
        st.failures == 1 and st.retry_at == clock.now + 2 for st in r.syncer.secrets.values()
    )
    path = str(tmp_path / "client.properties")
    assert r.sample("secretsync_sync_errors_total", path=path, reason="throttled") == 1
    r.source.reset_counts()

    await r.syncer.cycle()  # a regular cycle skips secrets still in backoff
    assert r.source.count("DescribeSecret") == 0

    r.source.heal()
    clock.advance(2)
    await r.syncer.cycle(regular=False)
    assert all(st.failures == 0 and st.retry_at == 0 for st in r.syncer.secrets.values())
    assert len(outputs_in(tmp_path)) == 3


FAILURES = 2_048


async def test_thousands_of_consecutive_failures_keep_a_bounded_future_retry(
    tmp_path: Path, make_rig: Any
) -> None:
    # twice the 1,024 failures after which the old code overflowed
    clock = FakeClock()
    r = make_rig(make_config(tmp_path), seeded_source(), clock=clock, rng=UpperBound())
    logs.configure("error", "json", stream=io.StringIO())  # thousands of warnings are not the point
    r.source.fail(None, SERVER_ERROR)
    for _ in range(FAILURES):
        report = (
            await r.syncer.cycle(regular=False)
            if r.syncer.next_retry_at()
            else await r.syncer.cycle()
        )
        assert report.secrets_checked == 2
        retry = r.syncer.next_retry_at()
        # never later than one poll interval (30 s here): the end of the outage is seen
        # within one poll
        assert retry is not None and clock.now < retry <= clock.now + 30
        clock.now = retry
    assert all(st.failures == FAILURES for st in r.syncer.secrets.values())
    assert (
        r.source.count("DescribeSecret") == 2 * FAILURES
    )  # one call per secret per retry, no spin


async def test_a_reload_forgets_removed_outputs_and_secrets(tmp_path: Path, make_rig: Any) -> None:
    data = config_data(tmp_path)
    r = make_rig(parse_config(data), seeded_source())
    await r.syncer.cycle()
    sr_path = str(tmp_path / "schema-registry.properties")
    assert r.sample("secretsync_last_success_timestamp_seconds", path=sr_path) > 0
    assert logs.scrub(f"SRKEY:{CANARY_SR_SECRET}") == logs.MASK

    data["outputs"] = [o for o in data["outputs"] if o["path"].endswith("client.properties")]
    removed = r.syncer.reconfigure(parse_config(data))

    assert sorted(p.name for p in removed.paths) == [
        "combined.properties",
        "schema-registry.properties",
    ]
    assert removed.secrets == [SR_ID]
    exposed = {
        json.dumps(s.labels) for family in r.metrics.registry.collect() for s in family.samples
    }
    assert not any(sr_path in labels or SR_ID in labels for labels in exposed)
    assert CANARY_SR_SECRET in logs.scrub(f"SRKEY:{CANARY_SR_SECRET}")  # no longer held


async def test_summary_line_per_cycle(
    tmp_path: Path, make_rig: Any, log_buffer: io.StringIO
) -> None:
    r = make_rig(make_config(tmp_path), seeded_source())
    await r.syncer.cycle()
    await r.syncer.cycle()
    r.source.fail(None, NOT_FOUND)
    await r.syncer.cycle()
    lines = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    summaries = [e for e in lines if e["event"] == "poll_cycle"]
    assert [
        (s["secrets_checked"], s["secrets_changed"], s["files_written"]) for s in summaries
    ] == [(2, 2, 3), (2, 0, 0), (2, 0, 0)]
    # info only when something changed or failed: an unchanged poll is a debug line
    assert [s["level"] for s in summaries] == ["info", "debug", "info"]
    assert summaries[2]["errors"] > 0
    assert all({"errors", "duration_s", "timestamp", "level"} <= s.keys() for s in summaries)
    assert repr(r.syncer) == "Syncer(outputs=3, secrets=2, cycles=3, writes=3)"
    text = log_buffer.getvalue()
    assert CANARY_PASSWORD not in text and CANARY_SR_SECRET not in text
