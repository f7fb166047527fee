"""Regional failover: check a secret in a replica region when the primary region cannot answer.

Secrets Manager replicates secrets to other regions with the same version
ids. :class:`FailoverStore` asks the primary region first, every time. When
that check fails for a reason that says the region cannot answer (connection
errors, timeouts, HTTP 5xx, ``InternalServiceError``: see
:attr:`SourceError.unavailable`), the same check runs at once against the
failover region (DescribeSecret, then GetSecretValue pinned to the version
it reports). Throttling and permanent errors (not found, access denied,
deleted) are not reasons to fail over: they are the primary's answer.

A value from the replica is used like any other; since the version ids are
the same, switching regions by itself never changes a file. The next check
of a secret tries the primary first again, so the daemon returns to it as
soon as it answers.
"""

from __future__ import annotations

from collections.abc import Callable

from secretsync import logs
from secretsync.store import Read, SecretStore, SourceError

Switched = Callable[[str, bool], None]
"""Called as ``(secret_id, on_failover)`` whenever a secret moves to or from the replica."""


class FailoverStore:
    """A :class:`SecretStore` over a primary and a failover store. No I/O in the constructor."""

    def __init__(
        self,
        primary: SecretStore,
        failover: SecretStore,
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
        self.failovers = 0  # checks answered by the failover region
        self._log = logs.get_logger()

    def __repr__(self) -> str:
        return (
            f"FailoverStore(primary={self.primary_region!r}, failover={self.failover_region!r}, "
            f"failovers={self.failovers}, active={len(self._on_failover)})"
        )

    def active(self, secret_id: str) -> bool:
        """True while the last good check of ``secret_id`` came from the failover region."""
        return secret_id in self._on_failover

    async def read(self, secret_id: str, held_version: str | None) -> Read:
        """The primary's answer, or, when the primary cannot answer, the replica's.

        Raises the primary's SourceError when it is not about availability, and
        the failover region's when that fails too (a check that fails in both
        regions keeps the primary's error code for backoff and metrics).
        """
        try:
            read = await self.primary.read(secret_id, held_version)
        except SourceError as exc:
            if not exc.unavailable:
                raise
            try:
                read = await self.failover.read(secret_id, held_version)
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
        self._switch(secret_id, on_failover=False)
        return read

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
