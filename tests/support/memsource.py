"""An in-memory SecretSource for fast syncer, runtime and notifier tests.

It behaves like Secrets Manager where the syncer can tell: versions with ids,
one staged AWSCURRENT, ``fetch`` pinned to a version id, ``SourceError`` for
unknown secrets. Faults are injected per secret (or for all) as the errors
the real adapter raises; ``hang`` makes calls never answer, like an endpoint
that accepts the connection and says nothing. Calls are counted.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from typing import Any

from secretsync.source.protocol import Read, SecretValue, SourceError

THROTTLED = ("ThrottlingException", "Rate exceeded", True)
SERVER_ERROR = ("InternalServiceError", "injected", True)
NOT_FOUND = ("ResourceNotFoundException", "Secrets Manager can't find the specified secret.", False)
UNREACHABLE = ("ConnectionError", "Could not connect to the endpoint URL", True)
EPOCH = 1_750_000_000.0  # CreatedDate of the first version put (then one second per version)


class MemorySource:
    def __init__(self) -> None:
        self.versions: dict[str, dict[str, SecretValue]] = {}
        self.current: dict[str, str] = {}
        self.calls: Counter[str] = Counter()
        self.fetched: list[tuple[str, str]] = []
        self.faults: dict[str | None, tuple[str, str, bool]] = {}  # None: every secret
        self.hang = False
        self.region = "us-east-1"
        self.created: dict[str, float] = {}  # version id → CreatedDate (epoch seconds)
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"MemorySource(secrets={len(self.current)}, calls={dict(self.calls)})"

    # -- set-up side ---------------------------------------------------------------------

    def put(
        self,
        secret_id: str,
        value: dict[str, Any] | str | bytes,
        *,
        version_id: str | None = None,
        created: float | None = None,
    ) -> str:
        """A new version staged AWSCURRENT; returns its id. ``created``: its CreatedDate
        (epoch seconds; default: later than every version put before)."""
        n = next(self._ids)
        version_id = version_id or f"v{n:04d}-{secret_id.strip('/').replace('/', '-')}"
        self.created[version_id] = EPOCH + n if created is None else created
        if isinstance(value, bytes):
            item = SecretValue(secret_id, version_id, binary=value)
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            item = SecretValue(secret_id, version_id, text=text)
        self.versions.setdefault(secret_id, {})[version_id] = item
        self.current[secret_id] = version_id
        return version_id

    def delete(self, secret_id: str) -> None:
        self.versions.pop(secret_id, None)
        self.current.pop(secret_id, None)

    def fail(self, secret_id: str | None, fault: tuple[str, str, bool]) -> None:
        self.faults[secret_id] = fault

    def heal(self) -> None:
        self.faults.clear()
        self.hang = False

    def count(self, operation: str) -> int:
        return self.calls[operation]

    def reset_counts(self) -> None:
        self.calls.clear()
        self.fetched.clear()

    # -- SecretSource ---------------------------------------------------------------------

    async def _enter(self, operation: str, secret_id: str) -> None:
        self.calls[operation] += 1
        await asyncio.sleep(0)  # a real await, like a network call
        if self.hang:
            await asyncio.Event().wait()
        fault = self.faults.get(secret_id) or self.faults.get(None)
        if fault is not None:
            code, message, transient = fault
            raise SourceError(secret_id, code, message, transient=transient)
        if secret_id not in self.current:
            code, message, transient = NOT_FOUND
            raise SourceError(secret_id, code, message, transient=transient)

    async def read(self, secret_id: str, held_version: str | None) -> Read:
        version_id = await self.current_version(secret_id)
        if version_id == held_version:
            return Read(version_id, None, self.region)
        value = await self.fetch(secret_id, version_id)
        return Read(version_id, value, self.region, self.created.get(version_id))

    async def current_version(self, secret_id: str) -> str:
        await self._enter("DescribeSecret", secret_id)
        return self.current[secret_id]

    async def fetch(self, secret_id: str, version_id: str) -> SecretValue:
        await self._enter("GetSecretValue", secret_id)
        self.fetched.append((secret_id, version_id))
        try:
            return self.versions[secret_id][version_id]
        except KeyError:
            raise SourceError(
                secret_id, "ResourceNotFoundException", "no such version", transient=False
            ) from None
