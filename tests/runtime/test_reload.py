"""A reload is all or nothing: a step that fails leaves every part on the previous config.

The steps that can fail run before anything switches: parse, validate, load a
changed ``web_config``, lock the new outputs, bind a changed
``metrics.listen``. Each case below makes one of them fail in a reload that
also adds an output, changes a static property and a notify target, and
checks every part afterwards: the runtime's config (the one owner), the
syncer's outputs, the writer's managed paths and locks, the notifier's
targets, the server's address, the files on disk, and the reload counter.
Before the fix a taken ``metrics.listen`` left the syncer and the notifier
on the new config while the reload was logged as refused with an empty error.
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from secretsync.runtime.run import Runtime
from tests.support.harness import config_data, seeded_source
from tests.support.inproc import Running, Start
from tests.support.motoserver import free_port
from tests.support.wait import async_wait_until

Breaker = Callable[[Path, dict[str, Any]], str]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _base(tmp_path: Path, port: int) -> dict[str, Any]:
    data = config_data(tmp_path / "out", metrics={"listen": f"127.0.0.1:{port}"})
    data["notify"] = {"app": {"command": ["true"]}}
    data["outputs"][0]["notify"] = ["app"]
    data["poll"] = {"interval": "1h", "jitter": 0}
    return data


def _changed(data: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    new: dict[str, Any] = json.loads(json.dumps(data))
    extra = dict(new["outputs"][0], path=str(tmp_path / "out" / "added.properties"))
    new["outputs"].append(extra)
    new["outputs"][0]["static"] = {**new["outputs"][0].get("static", {}), "client.id": "new"}
    new["notify"]["other"] = {"command": ["false"]}
    new["outputs"][0]["notify"] = ["other"]
    return new


def _invalid_yaml(cfg: Path, new: dict[str, Any]) -> str:
    cfg.write_text(yaml.safe_dump(new) + "\n  : [unbalanced\n")
    return "YAML"


def _invalid_schema(cfg: Path, new: dict[str, Any]) -> str:
    new["poll"]["interval"] = "soon"
    cfg.write_text(yaml.safe_dump(new))
    return "poll.interval"


def _held_output(cfg: Path, new: dict[str, Any]) -> str:
    # a lock entry that is a directory: the new output cannot be locked
    added = Path(new["outputs"][-1]["path"])
    (added.parent / f".{added.name}.secretsync-lock").mkdir(parents=True)
    cfg.write_text(yaml.safe_dump(new))
    return "not a regular file"


def _unloadable_tls(cfg: Path, new: dict[str, Any]) -> str:
    missing = cfg.parent / "no-such.pem"
    new["metrics"]["web_config"] = {
        "tls_server_config": {"cert_file": str(missing), "key_file": str(missing)}
    }
    cfg.write_text(yaml.safe_dump(new))
    return "no-such.pem"


def _taken_listen(port: int) -> Breaker:
    def breaker(cfg: Path, new: dict[str, Any]) -> str:
        new["metrics"]["listen"] = f"127.0.0.1:{port}"
        cfg.write_text(yaml.safe_dump(new))
        return "already in use"

    return breaker


def _snapshot(runtime: Runtime) -> dict[str, Any]:
    assert runtime.syncer is not None and runtime.server is not None
    return {
        "config": runtime.config,
        "syncer": runtime.syncer.config,
        "outputs": sorted(runtime.syncer.outputs),
        "managed": sorted(runtime.writer._dirs),
        "targets": sorted(runtime.notifier._config.notify),
        "port": runtime.server.port,
        "running": runtime.server.running,
    }


@pytest.mark.parametrize("step", ["yaml", "schema", "tls", "lock", "listen"])
@pytest.mark.slow
async def test_a_reload_failing_at_any_step_changes_nothing(
    tmp_path: Path, run_inproc: Start, taken_port: int, step: str, log_buffer: io.StringIO
) -> None:
    cfg = tmp_path / "sync.yaml"
    data = _base(tmp_path, free_port())
    cfg.write_text(yaml.safe_dump(data))
    r: Running = await run_inproc(cfg, seeded_source(), serve_metrics=True, watch=False)
    first = tmp_path / "out" / "client.properties"
    await async_wait_until(first.exists, 20, "the first sync")
    assert r.runtime.reloader is not None
    before = _snapshot(r.runtime)
    bytes_before = first.read_bytes()

    breakers: dict[str, Breaker] = {
        "yaml": _invalid_yaml,
        "schema": _invalid_schema,
        "tls": _unloadable_tls,
        "lock": _held_output,
        "listen": _taken_listen(taken_port),
    }
    expected = breakers[step](cfg, _changed(data, tmp_path))
    assert await r.runtime.reloader.reload("test") is False

    assert _snapshot(r.runtime) == before
    assert r.runtime.config is before["config"]  # the very same object
    assert r.sample("secretsync_config_reloads_total", outcome="error") == 1
    assert r.sample("secretsync_config_reloads_total", outcome="ok") == 0
    r.poller.wake()
    cycles = r.syncer.cycles
    await async_wait_until(lambda: r.syncer.cycles > cycles, 20, "a cycle after the reload")
    assert first.read_bytes() == bytes_before  # the new static property was not applied
    assert not (tmp_path / "out" / "added.properties").exists()
    events = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    failed = [e for e in events if e.get("event") == "config_reload_failed"]
    assert len(failed) == 1 and expected in str(failed[0].get("error", "")), failed


@pytest.mark.slow
async def test_a_reload_that_succeeds_switches_every_part(
    tmp_path: Path, run_inproc: Start
) -> None:
    cfg = tmp_path / "sync.yaml"
    data = _base(tmp_path, free_port())
    cfg.write_text(yaml.safe_dump(data))
    r: Running = await run_inproc(cfg, seeded_source(), serve_metrics=True, watch=False)
    await async_wait_until((tmp_path / "out" / "client.properties").exists, 20, "first sync")
    assert r.runtime.reloader is not None
    new = _changed(data, tmp_path)
    port = free_port()
    new["metrics"]["listen"] = f"127.0.0.1:{port}"
    cfg.write_text(yaml.safe_dump(new))
    assert await r.runtime.reloader.reload("test") is True
    after = _snapshot(r.runtime)
    assert after["config"] is r.syncer.config
    assert after["port"] == port and "other" in after["targets"]
    assert Path(new["outputs"][-1]["path"]) in after["managed"]
    await async_wait_until(
        (tmp_path / "out" / "added.properties").exists, 20, "the added output written"
    )
