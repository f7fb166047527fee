"""The dry run: what ``once`` would write, without writing anything.

It checks and fetches exactly like a cycle and renders through the same
:meth:`Syncer.prepare`, then compares with what is on disk. The plan names
keys, never values.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from secretsync.config import OutputConfig
from secretsync.files import read_current
from secretsync.syncer import Syncer


@dataclass(frozen=True)
class PlannedOutput:
    """Dry-run result for one output: keys only, never values."""

    config: OutputConfig
    would_write: bool | None  # None: cannot be rendered (see error)
    keys: list[str]
    error: str | None


async def plan(syncer: Syncer) -> list[PlannedOutput]:
    """Check and fetch every secret, render every output, compare with disk; write nothing."""
    secrets = list(syncer.secrets.values())
    await asyncio.gather(*(syncer.check(st) for st in secrets))
    planned = []
    for state in syncer.outputs.values():
        prepared = syncer.prepare(state)
        if prepared.data is None:
            planned.append(PlannedOutput(state.config, None, [], prepared.error))
            continue
        current = await asyncio.to_thread(read_current, state.config.path)
        planned.append(PlannedOutput(state.config, current != prepared.data, prepared.keys, None))
    return planned
