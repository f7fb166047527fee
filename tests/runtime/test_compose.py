"""The composition root both ``run`` and ``once`` start through (runtime/compose.py)."""

from __future__ import annotations

import contextlib
import io
import json
import resource
from pathlib import Path

import pytest

from secretsync.config.model import parse_config
from secretsync.metrics import Metrics
from secretsync.runtime.compose import Core
from secretsync.runtime.startup import StartupError
from tests.support.harness import config_data, seeded_source


async def test_start_raises_the_soft_fd_limit_to_the_hard_limit_once(
    tmp_path: Path, log_buffer: io.StringIO
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 300:
        pytest.skip(f"hard RLIMIT_NOFILE is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    core = Core(
        parse_config(config_data(tmp_path)), Metrics(), with_notifier=True, writes_in_thread=True
    )
    try:
        async with contextlib.AsyncExitStack() as stack:
            await core.start(stack, seeded_source())
            assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        core.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    events = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    [logged] = [e for e in events if e["event"] == "fd_limit"]
    assert (logged["soft_before"], logged["soft"], logged["hard"]) == (256, hard, hard)


async def test_the_collaborators_are_wired_at_construction(tmp_path: Path) -> None:
    config = parse_config(config_data(tmp_path))
    core = Core(config, Metrics(), with_notifier=True, writes_in_thread=True)
    assert core.notifier is not None and core.journal is core.writer.journal
    with pytest.raises(RuntimeError):
        _ = core.syncer  # no syncer before the source is open
    try:
        async with contextlib.AsyncExitStack() as stack:
            syncer = await core.start(stack, seeded_source())
            assert syncer is core.syncer and syncer.writer is core.writer
            assert syncer.notifier is core.notifier
            report = await syncer.cycle()
            # what the writer wrote reaches the pass's report through the writer itself
            assert sorted(w.path for w in report.files_written) == sorted(
                o.path for o in config.outputs
            )
    finally:
        core.close()


async def test_once_without_targets_builds_no_notifier(tmp_path: Path) -> None:
    core = Core(
        parse_config(config_data(tmp_path)), Metrics(), with_notifier=False, writes_in_thread=True
    )
    assert core.notifier is None and core.journal is None


async def test_a_held_output_refuses_the_start(tmp_path: Path) -> None:
    config = parse_config(config_data(tmp_path))
    first = Core(config, Metrics(), with_notifier=False, writes_in_thread=True)
    second = Core(config, Metrics(), with_notifier=False, writes_in_thread=True)
    try:
        async with contextlib.AsyncExitStack() as stack:
            await first.start(stack, seeded_source())
            with pytest.raises(StartupError) as refused:
                await second.start(stack, seeded_source())
            assert refused.value.exit_code == 2 and "managed by another" in str(refused.value)
    finally:
        first.close()
        second.close()
