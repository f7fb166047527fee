"""Regional failover: check a secret in a replica region when the primary region cannot answer.

Secrets Manager replicates secrets to other regions with the same version
ids. :class:`FailoverSource` asks the primary region first, every time. When
that check fails for a reason that says the region cannot answer (connection
errors, timeouts, HTTP 5xx, ``InternalServiceError``: see
:attr:`SourceError.unavailable`), the same check runs at once against the
failover region (DescribeSecret, then GetSecretValue pinned to the version
it reports). Throttling and permanent errors (not found, access denied,
deleted) are not reasons to fail over: they are the primary's answer.

Since the version ids are the same, switching regions by itself never
changes a file. But a replica can be behind its primary (replication lags,
and lags most when the primary region is impaired): its ``AWSCURRENT`` may be
the version before a rotation, whose key the rotation may already have
revoked. So a replica's answer replaces the version held only when that
version is newer: its ``CreatedDate`` is later than the held version's. An
older (or undatable) one is refused: the check counts as good, the held
version and its files stay, ``replica_behind`` is logged once, and later
checks ask the replica whether it is still at the refused version (one
DescribeSecret, no fetch). A flapping primary therefore never flaps a file.
With nothing held yet (a start during an outage), the replica's answer is
taken as it is. The primary's answers are always taken, older or not (an
operator's rollback is made in the primary region).

The next check of a secret tries the primary first again, so the daemon
returns to it as soon as it answers.
"""

from __future__ import annotations

from collections.abc import Callable

from secretsync import logs
from secretsync.source.protocol import Read, SecretSource, SourceError

Switched = Callable[[str, bool], None]
"""Called as ``(secret_id, on_failover)`` whenever a secret moves to or from the replica."""


class FailoverSource:
    """A :class:`SecretSource` over a primary and a failover source. No I/O in the constructor."""

    def __init__(
        self,
        primary: SecretSource,
        failover: SecretSource,
        *,
        primary_region: str | None,
        failover_region: str,
        on_switch: Switched | None = None,
    ) -> None:
        self.primary = primary
        self.failover = failover
        self.primary_region = primary_region
        self.failover_region = failover_region
        self._on_switch = on_switch
        self._on_failover: set[str] = set()
        # per secret: the version this source last handed out a value of, and its CreatedDate
        self._held: dict[str, tuple[str, float | None]] = {}
        # per secret: the replica's AWSCURRENT that was refused as older than the held one
        self._behind: dict[str, str] = {}
        self.failovers = 0  # checks answered by the failover region
        self.refused = 0  # replica answers refused as older than the version held
        self._log = logs.get_logger()

    def __repr__(self) -> str:
        return (
            f"FailoverSource(primary={self.primary_region!r}, failover={self.failover_region!r}, "
            f"failovers={self.failovers}, active={len(self._on_failover)})"
        )

    def active(self, secret_id: str) -> bool:
        """True while the last good check of ``secret_id`` came from the failover region."""
        return secret_id in self._on_failover

    async def read(self, secret_id: str, held_version: str | None) -> Read:
        """The primary's answer, or, when the primary cannot answer, the replica's.

        A replica's answer never replaces ``held_version`` with an older version
        (see the module docstring): then the read says ``held_version``,
        unchanged. Raises the primary's SourceError when it is not about
        availability, and the failover region's when that fails too (a check
        that fails in both regions keeps the primary's error code for backoff
        and metrics).
        """
        try:
            read = await self.primary.read(secret_id, held_version)
        except SourceError as exc:
            if not exc.unavailable:
                raise
            try:
                read = await self._replica_read(secret_id, held_version)
            except SourceError as fallback:
                self._log.warning(
                    "secret_failover_failed",
                    secret=secret_id,
                    primary_code=exc.code,
                    failover_code=fallback.code,
                    failover_region=self.failover_region,
                )
                raise exc from None
            self.failovers += 1
            self._switch(secret_id, on_failover=True, reason=exc.code)
            return read
        if read.value is not None:  # a new version held: what the replica lacked is moot
            self._behind.pop(secret_id, None)
        self._remember(secret_id, read)
        self._switch(secret_id, on_failover=False)
        return read

    def _remember(self, secret_id: str, read: Read) -> None:
        if read.value is not None:
            self._held[secret_id] = (read.version_id, read.created)

    async def _replica_read(self, secret_id: str, held_version: str | None) -> Read:
        """The replica's answer, unless it would take ``held_version`` back to an older one."""
        if held_version is None:  # nothing to protect: take what the replica has
            read = await self.failover.read(secret_id, None)
            self._remember(secret_id, read)
            return read
        # a replica already found behind is asked whether it is still at that version:
        # then it answers without a fetch
        behind = self._behind.get(secret_id)
        read = await self.failover.read(secret_id, behind or held_version)
        if read.version_id == held_version:
            self._behind.pop(secret_id, None)  # caught up
            return Read(held_version, None, read.region)
        if read.value is None:  # still at the version refused before
            return Read(held_version, None, read.region)
        known_version, held_created = self._held.get(secret_id, (None, None))
        if known_version != held_version:
            held_created = None
        if read.created is not None and held_created is not None and read.created > held_created:
            self._behind.pop(secret_id, None)
            self._remember(secret_id, read)
            return read  # newer: the replica has a rotation the primary could not tell us
        self.refused += 1
        if self._behind.get(secret_id) != read.version_id:
            self._log.warning(
                "replica_behind",
                secret=secret_id,
                version_id=held_version,
                replica_version_id=read.version_id,
                failover_region=self.failover_region,
                reason="undated" if read.created is None or held_created is None else "not_newer",
            )
        self._behind[secret_id] = read.version_id
        return Read(held_version, None, read.region)

    def _switch(self, secret_id: str, *, on_failover: bool, reason: str | None = None) -> None:
        if on_failover == (secret_id in self._on_failover):
            return
        if on_failover:
            self._on_failover.add(secret_id)
            self._log.warning(
                "secret_failed_over",
                secret=secret_id,
                primary_region=self.primary_region,
                failover_region=self.failover_region,
                reason=reason,
            )
        else:
            self._on_failover.discard(secret_id)
            self._log.info(
                "secret_back_on_primary", secret=secret_id, primary_region=self.primary_region
            )
        if self._on_switch is not None:
            self._on_switch(secret_id, on_failover)
