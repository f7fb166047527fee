"""What the syncer needs from a secret source, without importing any AWS library.

:class:`SecretSource` is the protocol the syncer depends on: the aioboto3
adapter (:mod:`secretsync.source.secretsmanager`) implements it for Secrets Manager, and the
tests implement it in memory. :class:`SourceError` is the one error a source
raises, classified transient (retry with backoff) or permanent (retry at the
normal interval).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# Error codes worth retrying soon; anything else from the API is permanent
# (not found, access denied, marked for deletion, decryption failure, …).
TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "InternalServiceError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ExpiredTokenException",
        "IDPCommunicationError",
        "CallTimeout",  # our own deadline on a call (see source.py)
    }
)
THROTTLE_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
# Errors that say the region cannot answer now: worth asking a replica region.
# Throttling is not one (back off instead), nor is anything permanent.
UNAVAILABLE_CODES = frozenset(
    {
        "ConnectionError",
        "InternalServiceError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "CallTimeout",  # a stall: no complete answer within the call's deadline
    }
)


@dataclass(frozen=True, repr=False)
class SecretValue:
    """One fetched version of a secret. ``repr`` never shows the value."""

    secret_id: str
    version_id: str
    text: str | None = None
    binary: bytes | None = None

    def __repr__(self) -> str:
        return f"SecretValue(secret_id={self.secret_id!r}, version_id={self.version_id!r})"


class SourceError(Exception):
    """A source call failed. ``code`` is short and label-safe; the message holds no secret value."""

    safe_message = True

    def __init__(
        self,
        secret_id: str,
        code: str,
        message: str,
        *,
        transient: bool,
        unavailable: bool | None = None,
    ) -> None:
        where = f"secret {secret_id!r}: " if secret_id else ""
        super().__init__(f"{where}{code}: {message}")
        self.secret_id = secret_id
        self.code = code
        self.transient = transient
        # the region cannot answer (connection, timeout, 5xx): a replica region may
        self.unavailable = code in UNAVAILABLE_CODES if unavailable is None else unavailable

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLE_CODES


@dataclass(frozen=True)
class Read:
    """One check of a secret: the version staged AWSCURRENT, and its value when it is
    not the version already held (``value`` None: unchanged). ``region``: who answered.
    ``created``: with a value, the version's creation time (epoch seconds, the
    ``CreatedDate`` Secrets Manager gives), when known; it tells an older version
    from a newer one (see :mod:`secretsync.source.failover`)."""

    version_id: str
    value: SecretValue | None
    region: str | None = None
    created: float | None = None


class SecretSource(Protocol):
    """A source of secret versions. Raises :class:`SourceError` and nothing else."""

    async def read(self, secret_id: str, held_version: str | None) -> Read:
        """Check one secret: the version staged ``AWSCURRENT`` (cheap), and, only when it
        is not ``held_version``, the value of exactly that version (never "whatever is
        current now", so a rotation between the two calls cannot mix versions)."""
