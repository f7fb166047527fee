"""The dry run: what ``once`` would write, without writing anything.

It checks and fetches exactly like a cycle and renders through the same
:meth:`Syncer.prepare`, then compares with what is on disk. The plan names
keys; the only values it holds are those the config itself gives (``static``,
and what ``sasl`` / ``basic_auth`` fix, such as ``sasl.mechanism``), never a
value that came from a secret.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from secretsync.config.model import OutputConfig
from secretsync.output.files import read_current
from secretsync.sync.syncer import Syncer


@dataclass(frozen=True)
class PlannedOutput:
    """Dry-run result for one output: its keys, and the values of those the config gives.

    ``shown`` maps a key to its value only when the value comes from the config
    (not a secret); every other key's value is to be masked.
    """

    config: OutputConfig
    would_write: bool | None  # None: cannot be rendered (see error)
    keys: list[str]
    error: str | None
    shown: dict[str, str] = field(default_factory=dict)


def config_values(output: OutputConfig) -> dict[str, str]:
    """The output's keys whose values the config gives: ``static`` and the fixed keys
    of ``sasl`` / ``basic_auth``. The config refuses a secret that gives one of them."""
    values = dict(output.static)
    for creds in output.derived:
        values.update(creds.config_values())
    return values


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
        known = config_values(state.config)
        shown = {key: known[key] for key in prepared.keys if key in known}
        would_write = current != prepared.data
        planned.append(PlannedOutput(state.config, would_write, prepared.keys, None, shown))
    return planned
