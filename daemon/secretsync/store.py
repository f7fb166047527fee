"""What the syncer needs from a secret store, without importing any AWS library.

:class:`SecretStore` is the protocol the syncer depends on: the aioboto3
adapter (:mod:`secretsync.source`) implements it for Secrets Manager, and the
tests implement it in memory. :class:`SourceError` is the one error a store
raises, classified transient (retry with backoff) or permanent (retry at the
normal interval).
"""

from __future__ import annotations

from typing import Protocol

from secretsync.render import SecretValue

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
    }
)
THROTTLE_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)


class SourceError(Exception):
    """A store call failed. ``code`` is short and label-safe; the message holds no secret value."""

    safe_message = True

    def __init__(self, secret_id: str, code: str, message: str, *, transient: bool) -> None:
        where = f"secret {secret_id!r}: " if secret_id else ""
        super().__init__(f"{where}{code}: {message}")
        self.secret_id = secret_id
        self.code = code
        self.transient = transient

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLE_CODES


class SecretStore(Protocol):
    """A source of secret versions. Both calls raise :class:`SourceError` and nothing else."""

    async def current_version(self, secret_id: str) -> str:
        """The version id staged ``AWSCURRENT`` (cheap: no value is transferred)."""

    async def fetch(self, secret_id: str, version_id: str) -> SecretValue:
        """The value of exactly ``version_id`` (never "whatever is current now")."""
