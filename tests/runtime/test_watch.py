"""Watching files: drift repair and live config reload, against moto over HTTP.

Daemon tests run ``secretsync run`` as a child process and read its JSON logs;
in-process tests drive a real Agent, Reloader and Watcher on a temp dir and
read a fresh metrics registry. Nothing here sleeps for a fixed time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from secretsync.config.model import load_config
from secretsync.metrics import Metrics
from secretsync.output.locks import OutputLock
from tests.support.configs import example_config, write_yaml
from tests.support.daemon import Daemon
from tests.support.faultproxy import FaultProxy
from tests.support.harness import NOWHERE, seeded_source
from tests.support.inproc import Start
from tests.support.motoserver import Moto, free_port
from tests.support.notifysock import NotifySocket
from tests.support.seeds import CANARY_PASSWORD, CANARY_SR_SECRET, KAFKA_ID, SR_ID, kafka_secret
from tests.support.wait import async_wait_until, wait_until

NAMES = ("client.properties", "schema-registry.properties", "combined.properties")


def content(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def extra_output(path: Path, secret_id: str = SR_ID) -> dict[str, Any]:
    return {"path": str(path), "mode": "0640", "secrets": [{"id": secret_id}]}


def assert_clean_log(daemon: Daemon, *canaries: str) -> None:
    log = daemon.log_path.read_text()
    assert "Traceback" not in log
    for canary in (CANARY_PASSWORD, CANARY_SR_SECRET, *canaries):
        assert canary not in log


def count_events(daemon: Daemon, name: str, **fields: Any) -> int:
    return sum(
        1
        for e in daemon.events()
        if e.get("event") == name and all(e.get(k) == v for k, v in fields.items())
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


# -- daemon tests ------------------------------------------------------------------------


def test_tampered_outputs_are_restored_with_their_mode_and_no_fetch(
    moto: Moto, proxy: FaultProxy, tmp_path: Path, start_daemon: Callable[..., Daemon]
) -> None:
    moto.seed_use_case()
    # two levels that do not exist yet: the watcher starts on the nearest parent
    out = tmp_path / "out" / "kafka"
    data = example_config(out, proxy.url, poll={"interval": "1h", "jitter": 0})
    for output in data["outputs"]:
        output["mode"] = "0640"
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    daemon = start_daemon(cfg)
    files = [out / name for name in NAMES]
    wait_until(lambda: all(p.exists() for p in files), 20, "first sync")
    wait_until(lambda: daemon.has_event("poll_cycle"), 10, "first cycle to finish")
    original = {p: p.read_bytes() for p in files}
    proxy.reset_counts()
    target = files[0]

    def restored(path: Path = target) -> bool:
        return content(path) == original[path] and mode(path) == 0o640

    def repairs() -> int:
        return count_events(daemon, "drift_repaired", path=str(target))

    tampers: list[tuple[str, Callable[[], object]]] = [
        ("edit", lambda: target.write_text(target.read_text() + "\nsasl.mechanism=NONE\n")),
        ("truncate", lambda: target.write_bytes(b"")),
        ("delete", target.unlink),
        ("chmod", lambda: target.chmod(0o644)),
    ]
    for what, tamper in tampers:
        before = repairs()
        tamper()
        wait_until(lambda b=before: repairs() > b, 10, f"a drift repair after {what}")
        wait_until(restored, 10, f"{target} restored after {what}")

    # the whole directory removed: every file comes back
    shutil.rmtree(out)
    wait_until(lambda: all(restored(p) for p in files), 10, "directory restored")

    assert proxy.count("GetSecretValue") == 0
    assert proxy.count("DescribeSecret") == 0  # 1h interval: no poll happened either
    assert daemon.has_event("drift_repaired", path=str(target), what="attrs")
    assert not daemon.has_event("config_reloaded")
    assert daemon.stop() < 5
    assert_clean_log(daemon)


def test_configmap_symlink_swap_adds_an_output_without_restart(
    moto: Moto, tmp_path: Path, start_daemon: Callable[..., Daemon]
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    # the layout kubelet makes for a mounted ConfigMap
    cm = tmp_path / "configmap"
    (cm / "..2024_01_01_00_00_00.1").mkdir(parents=True)
    data = example_config(out, moto.url, poll={"interval": "1h", "jitter": 0})
    write_yaml(cm / "..2024_01_01_00_00_00.1" / "sync.yaml", data)
    (cm / "..data").symlink_to("..2024_01_01_00_00_00.1")
    (cm / "sync.yaml").symlink_to("..data/sync.yaml")
    daemon = start_daemon(cm / "sync.yaml")
    wait_until(lambda: all((out / n).exists() for n in NAMES), 20, "first sync")

    # the swap: new timestamped dir, new ..data symlink renamed over the old one
    new_out = tmp_path / "more" / "extra.properties"  # in a directory that does not exist
    data["outputs"].append(extra_output(new_out))
    (cm / "..2024_01_02_00_00_00.2").mkdir()
    write_yaml(cm / "..2024_01_02_00_00_00.2" / "sync.yaml", data)
    (cm / "..data_tmp").symlink_to("..2024_01_02_00_00_00.2")
    os.rename(cm / "..data_tmp", cm / "..data")
    shutil.rmtree(cm / "..2024_01_01_00_00_00.1")

    # the poll interval is 1h: the file can only appear through the reload's wake-up
    wait_until(new_out.exists, 10, "the new output")
    wait_until(lambda: mode(new_out) == 0o640, 10, "its mode")
    assert b"schema.registry.url" in new_out.read_bytes()
    assert count_events(daemon, "config_reloaded", trigger="file") == 1
    assert daemon.has_event("config_reloaded", added=[str(new_out)])

    # the watcher follows the new output's directory
    good = new_out.read_bytes()
    new_out.write_bytes(b"tampered=1\n")
    wait_until(lambda: daemon.has_event("drift_repaired", path=str(new_out)), 10, "a repair")
    wait_until(lambda: content(new_out) == good, 10, "the new output restored")
    assert daemon.stop() < 5
    assert_clean_log(daemon)


def test_invalid_config_is_refused_and_the_old_one_keeps_syncing(
    moto: Moto, tmp_path: Path, start_daemon: Callable[..., Daemon]
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    data = example_config(out, moto.url, poll={"interval": "200ms", "jitter": 0})
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    daemon = start_daemon(cfg)
    kafka_file = out / "client.properties"
    wait_until(kafka_file.exists, 20, "first sync")

    cfg.write_text("outputs: [unclosed\n")
    wait_until(lambda: daemon.has_event("config_reload_failed"), 10, "YAML error refused")
    bad_schema = example_config(out, moto.url, poll={"interval": "200ms", "jitter": 0})
    bad_schema["outputs"][0]["colour"] = "blue"
    write_yaml(cfg, bad_schema)
    wait_until(lambda: count_events(daemon, "config_reload_failed") >= 2, 10, "schema refused")

    errors = [e["error"] for e in daemon.events() if e.get("event") == "config_reload_failed"]
    assert "YAML syntax error" in errors[0]
    assert "outputs[0].colour: unknown field" in errors[1]

    moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-after-bad-cfg"))
    wait_until(
        lambda: b"CANARY-after-bad-cfg" in (content(kafka_file) or b""),
        10,
        "a rotation synced on the old config",
    )
    assert daemon.proc.poll() is None
    assert not daemon.has_event("config_reloaded")
    assert daemon.stop() < 5
    assert_clean_log(daemon, "CANARY-after-bad-cfg")


def test_sighup_after_an_in_place_edit_reloads(
    moto: Moto, tmp_path: Path, start_daemon: Callable[..., Daemon]
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    data = example_config(out, moto.url, poll={"interval": "1h", "jitter": 0})
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    # --no-watch: only the signal can cause this reload
    daemon = start_daemon(cfg, "--no-watch")
    wait_until(lambda: all((out / n).exists() for n in NAMES), 20, "first sync")

    new_out = out / "extra.properties"
    data["outputs"].append(extra_output(new_out))
    write_yaml(cfg, data)
    daemon.proc.send_signal(signal.SIGHUP)

    wait_until(new_out.exists, 10, "the output added by the reload")
    assert daemon.has_event("config_reloaded", trigger="sighup", added=[str(new_out)])
    assert daemon.proc.poll() is None
    assert daemon.stop() < 5
    assert daemon.proc.returncode == 0
    assert_clean_log(daemon)


def test_a_reload_that_changes_aws_says_a_restart_is_needed_and_keeps_the_clients(
    moto: Moto, tmp_path: Path, start_daemon: Callable[..., Daemon]
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    data = example_config(out, moto.url, poll={"interval": "500ms", "jitter": 0})
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    daemon = start_daemon(cfg, "--no-watch")
    wait_until(lambda: all((out / n).exists() for n in NAMES), 20, "first sync")

    # an endpoint nothing listens on: were it applied, every later check would fail
    data["aws"] = {**data["aws"], "endpoint_url": NOWHERE, "concurrency": 2}
    write_yaml(cfg, data)
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: daemon.has_event("config_reloaded"), 10, "the reload")
    assert daemon.has_event("config_restart_needed", fields=["aws"])

    moto.rotate(KAFKA_ID, kafka_secret("CANARYafterawsedit"))
    wait_until(
        lambda: b"CANARYafterawsedit" in (content(out / NAMES[0]) or b""),
        10,
        "the rotation, fetched through the clients built at start",
    )
    assert count_events(daemon, "secret_check_failed") == 0
    assert daemon.stop() < 5
    assert daemon.proc.returncode == 0
    assert_clean_log(daemon, "CANARYafterawsedit")


def test_a_reload_reaches_the_notifier_the_metrics_server_and_systemd(
    moto: Moto,
    tmp_path: Path,
    start_daemon: Callable[..., Daemon],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    old_port, new_port = free_port(), free_port()
    data = example_config(out, moto.url, poll={"interval": "200ms", "jitter": 0}, settle=0)
    data["metrics"] = {"listen": f"127.0.0.1:{old_port}"}
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    with contextlib.closing(NotifySocket()) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", sock.address)
        daemon = start_daemon(cfg, "--no-watch")
        wait_until(lambda: sock.with_field("READY", "1"), 20, "READY=1")
        assert scrape(old_port)

        marker = tmp_path / "told"
        data["metrics"] = {"listen": f"127.0.0.1:{new_port}"}
        data["notify"] = {
            "hook": {"command": ["sh", "-c", f'echo "$SECRETSYNC_TARGET" >> {marker}']}
        }
        data["outputs"][0]["notify"] = ["hook"]
        write_yaml(cfg, data)
        daemon.proc.send_signal(signal.SIGHUP)

        wait_until(lambda: sock.with_field("RELOADING", "1"), 10, "RELOADING=1")
        wait_until(lambda: len(sock.with_field("READY", "1")) == 2, 10, "READY=1 after it")
        assert "MONOTONIC_USEC" in sock.with_field("RELOADING", "1")[0].fields
        wait_until(lambda: scrape(new_port), 10, "metrics on the new address")
        assert not scrape(old_port)

        moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-reload-notify"))
        wait_until(marker.exists, 20, "the target added by the reload")
        assert marker.read_text() == "hook\n"
        assert daemon.stop() < 5
    assert_clean_log(daemon, "CANARY-reload-notify")


def scrape(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            return b"secretsync_build_info" in resp.read()
    except OSError:
        return False


def test_no_watch_disables_repair_and_file_reload_but_polling_works(
    moto: Moto, tmp_path: Path, start_daemon: Callable[..., Daemon]
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    data = example_config(out, moto.url, poll={"interval": "200ms", "jitter": 0})
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    daemon = start_daemon(cfg, "--no-watch")
    kafka_file, sr_file = out / "client.properties", out / "schema-registry.properties"
    wait_until(lambda: all((out / n).exists() for n in NAMES), 20, "first sync")

    sr_file.write_bytes(b"tampered=1\n")
    new_out = out / "extra.properties"
    data["outputs"].append(extra_output(new_out))
    write_yaml(cfg, data)
    moto.rotate(KAFKA_ID, kafka_secret(password="CANARY-nowatch-5c"))

    wait_until(lambda: b"CANARY-nowatch-5c" in (content(kafka_file) or b""), 10, "rotation synced")
    cycles = count_events(daemon, "poll_cycle")
    wait_until(lambda: count_events(daemon, "poll_cycle") >= cycles + 3, 10, "three more polls")
    assert sr_file.read_bytes() == b"tampered=1\n"
    assert not new_out.exists()
    assert not daemon.has_event("drift_repaired")
    assert not daemon.has_event("config_reloaded")
    assert daemon.stop() < 5
    assert_clean_log(daemon, "CANARY-nowatch-5c")


# -- in-process tests ----------------------------------------------------------------------


async def test_own_writes_on_rotation_are_not_drift(tmp_path: Path, run_inproc: Start) -> None:
    out = tmp_path / "out"
    cfg = write_yaml(
        tmp_path / "sync.yaml", example_config(out, NOWHERE, poll={"interval": "100ms"})
    )
    r = await run_inproc(cfg, seeded_source())
    kafka_file = out / "client.properties"
    await async_wait_until(kafka_file.exists, 20, "first sync")

    for i in range(3):
        batches = r.watcher.batches
        password = f"CANARY-rot-{i}-x"
        r.source.put(KAFKA_ID, kafka_secret(password=password))
        needle = password.encode()
        await async_wait_until(
            lambda n=needle: n in (content(kafka_file) or b""),
            10,
            f"rotation {i} written",
        )
        # the watcher has seen (and handled) the events of that write
        await async_wait_until(lambda b=batches: r.watcher.batches > b, 10, "watch events")

    # the metric follows the rename (after the directory fsync)
    await async_wait_until(
        lambda: r.sample("secretsync_file_writes_total", path=str(kafka_file)) >= 4,
        10,
        "four writes counted",
    )
    for name in NAMES:
        assert r.sample("secretsync_drift_repairs_total", path=str(out / name)) == 0
    assert b"CANARY-rot-2-x" in kafka_file.read_bytes()


async def test_many_rapid_edits_cause_one_reload(tmp_path: Path, run_inproc: Start) -> None:
    out = tmp_path / "out"
    data = example_config(out, NOWHERE, poll={"interval": "1h", "jitter": 0})
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    r = await run_inproc(cfg, seeded_source(), reload_settle_s=2.0, reload_settle_max_s=60.0)
    await async_wait_until(lambda: all((out / n).exists() for n in NAMES), 20, "first sync")
    await async_wait_until(lambda: r.poller.cycles >= 1, 10, "first cycle")

    for i in range(8):
        requests = r.reloader.file_requests
        data["poll"] = {"interval": f"{60 + i}m", "jitter": 0}  # each one valid on its own
        write_yaml(cfg, data)
        # each edit seen on its own, each one asking for a reload
        await async_wait_until(
            lambda n=requests: r.reloader.file_requests > n,
            10,
            f"edit {i} seen",
        )
    new_out = out / "extra.properties"
    data["outputs"].append(extra_output(new_out))
    write_yaml(cfg, data)

    await async_wait_until(new_out.exists, 20, "the final config applied")
    assert r.runtime.config == load_config(cfg)
    assert r.sample("secretsync_config_reloads_total", outcome="ok") == 1
    assert r.sample("secretsync_config_reloads_total", outcome="error") == 0


async def test_reload_keeps_values_and_readiness_and_unmanages_removed_outputs(
    tmp_path: Path, run_inproc: Start
) -> None:
    out = tmp_path / "out"
    data = example_config(out, NOWHERE, poll={"interval": "1h", "jitter": 0})
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    r = await run_inproc(cfg, seeded_source())
    await async_wait_until(lambda: all((out / n).exists() for n in NAMES), 20, "first sync")
    await async_wait_until(lambda: r.poller.cycles >= 1, 10, "first cycle")
    assert r.syncer.not_ready() == []
    unready: list[list[str]] = []
    r.poller.add_cycle_hook(lambda _report: unready.append(r.syncer.not_ready()))
    r.source.reset_counts()

    # keep only client.properties, with one more static property and a shorter stale_after
    kept = data["outputs"][0]
    kept["static"]["client.id"] = "after-reload"
    data["outputs"] = [kept]
    data["metrics"] = {"listen": None, "stale_after": "5m"}
    write_yaml(cfg, data)
    kafka_file = out / "client.properties"
    await async_wait_until(
        lambda: b"client.id=after-reload" in (content(kafka_file) or b""), 10, "re-rendered"
    )

    assert r.source.count("GetSecretValue") == 0  # the values in memory were kept
    assert r.reloader.reloads == 1 and len(r.runtime.config.outputs) == 1
    await async_wait_until(lambda: unready, 10, "the cycle after the reload to end")
    assert all(paths == [] for paths in unready)
    assert set(r.syncer.secrets) == {KAFKA_ID}  # no longer polled: SR_ID
    assert set(r.syncer.outputs) == {kafka_file}
    # and the removed output's series left /metrics (no alert for an unmanaged file)
    assert (
        r.metrics.registry.get_sample_value(
            "secretsync_last_success_timestamp_seconds", {"path": str(out / "combined.properties")}
        )
        is None
    )

    # a removed output is left on disk and no longer managed
    removed = out / "schema-registry.properties"
    assert removed.exists()
    good = kafka_file.read_bytes()
    removed.write_bytes(b"tampered=1\n")
    kafka_file.write_bytes(b"tampered=1\n")
    await async_wait_until(
        lambda: r.sample("secretsync_drift_repairs_total", path=str(kafka_file)) == 1,
        10,
        "managed output repaired",
    )
    assert content(kafka_file) == good
    assert removed.read_bytes() == b"tampered=1\n"
    assert r.sample("secretsync_drift_repairs_total", path=str(removed)) == 0


async def test_wake_starts_a_cycle_at_once(tmp_path: Path, run_inproc: Start) -> None:
    out = tmp_path / "out"
    cfg = write_yaml(
        tmp_path / "sync.yaml",
        example_config(out, NOWHERE, poll={"interval": "1h", "jitter": 0}),
    )
    r = await run_inproc(cfg, seeded_source())
    await async_wait_until(lambda: r.poller.cycles >= 1, 20, "first cycle")

    r.poller.wake()
    await async_wait_until(lambda: r.poller.cycles >= 2, 10, "a second cycle long before 1h")
    r.poller.wake()
    await async_wait_until(lambda: r.poller.cycles >= 3, 10, "a third one")


async def test_sighup_request_reloads_even_when_the_file_is_unchanged(
    tmp_path: Path, run_inproc: Start
) -> None:
    out = tmp_path / "out"
    cfg = write_yaml(tmp_path / "sync.yaml", example_config(out, NOWHERE))
    r = await run_inproc(cfg, seeded_source())
    await async_wait_until(lambda: r.poller.cycles >= 1, 20, "first cycle")

    r.reloader.request("sighup")
    await async_wait_until(
        lambda: r.sample("secretsync_config_reloads_total", outcome="ok") == 1, 10, "a reload"
    )
    r.reloader.request("sighup")
    await async_wait_until(
        lambda: r.sample("secretsync_config_reloads_total", outcome="ok") == 2,
        10,
        "a second reload",
    )
    assert not r.task.done()


async def test_config_symlinked_from_elsewhere_reloads_on_an_edit_of_its_target(
    tmp_path: Path, run_inproc: Start
) -> None:
    out = tmp_path / "out"
    (tmp_path / "real").mkdir()
    (tmp_path / "etc").mkdir()
    data = example_config(out, NOWHERE, poll={"interval": "1h", "jitter": 0})
    target = write_yaml(tmp_path / "real" / "sync.yaml", data)
    link = tmp_path / "etc" / "sync.yaml"
    link.symlink_to(target)
    r = await run_inproc(link, seeded_source())
    await async_wait_until(lambda: all((out / n).exists() for n in NAMES), 20, "first sync")

    # a settled watch: the edit cannot be caught by the check made when it is (re)built
    await async_wait_until(lambda: out in r.watcher.watching, 10, "out/ watched")
    new_out = out / "extra.properties"
    data["outputs"].append(extra_output(new_out))
    write_yaml(target, data)  # in place, in a directory other than the link's
    await async_wait_until(new_out.exists, 10, "the output added by the edit")
    assert r.sample("secretsync_config_reloads_total", outcome="ok") == 1


async def test_a_reload_that_adds_a_path_held_elsewhere_is_refused(
    tmp_path: Path, run_inproc: Start
) -> None:
    out = tmp_path / "out"
    data = example_config(out, NOWHERE, poll={"interval": "1h", "jitter": 0})
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    r = await run_inproc(cfg, seeded_source(), watch=False)
    await async_wait_until(lambda: r.poller.cycles >= 1, 20, "first cycle")

    held = out / "held.properties"
    other = OutputLock(held, out)  # another writer (a second daemon) manages that path
    other.acquire()
    try:
        data["outputs"].append(extra_output(held))
        write_yaml(cfg, data)
        assert not await r.reloader.reload("sighup")
    finally:
        other.release()
    assert r.sample("secretsync_config_reloads_total", outcome="error") == 1
    assert len(r.runtime.config.outputs) == 3 and held not in r.syncer.outputs
    assert not held.exists()

    # once the other writer is gone, the same reload goes through
    assert await r.reloader.reload("sighup")
    await async_wait_until(held.exists, 10, "the added output written")


# -- the polling fallback ------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["inotify", "poll"])
async def test_drift_and_config_edits_are_seen_by_either_backend(
    tmp_path: Path, run_inproc: Start, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    if backend == "poll":
        monkeypatch.setenv("SECRETSYNC_WATCH", "poll")
    else:
        monkeypatch.delenv("SECRETSYNC_WATCH", raising=False)
    out = tmp_path / "out"
    data = example_config(out, NOWHERE, poll={"interval": "1h", "jitter": 0})
    cfg = write_yaml(tmp_path / "sync.yaml", data)
    r = await run_inproc(cfg, seeded_source())
    kafka_file = out / NAMES[0]
    await async_wait_until(lambda: all((out / n).exists() for n in NAMES), 20, "first sync")
    await async_wait_until(lambda: bool(r.watcher.watching), 10, "the watch in place")
    assert r.watcher.backend == backend
    original = kafka_file.read_bytes()

    kafka_file.write_bytes(b"tampered\n")
    await async_wait_until(
        lambda: r.sample("secretsync_drift_repairs_total", path=str(kafka_file)) >= 1,
        10,
        "the drift repaired",
    )
    assert content(kafka_file) == original

    requests = r.reloader.file_requests
    new_out = out / "extra.properties"
    data["outputs"].append(extra_output(new_out))
    write_yaml(cfg, data)
    await async_wait_until(lambda: r.reloader.file_requests > requests, 10, "the edit seen")
    await async_wait_until(new_out.exists, 20, "the new config applied")


def test_the_polling_fallback_is_named_in_the_log(
    moto: Moto, tmp_path: Path, start_daemon: Callable[..., Daemon]
) -> None:
    moto.seed_use_case()
    out = tmp_path / "out"
    cfg = write_yaml(tmp_path / "sync.yaml", example_config(out, moto.url))
    daemon = start_daemon(cfg, env={"SECRETSYNC_WATCH": "poll"})
    target = out / NAMES[0]
    wait_until(target.exists, 20, "first sync")
    wait_until(lambda: daemon.has_event("watch_polling"), 10, "the fallback logged")
    original = target.read_bytes()
    target.write_bytes(b"")
    wait_until(lambda: content(target) == original, 10, "drift repaired by polling")
    assert_clean_log(daemon)
