"""AWS client errors as :class:`SourceError`: the one translation, for Secrets Manager and push.

botocore and aiohttp raise many exception types; the daemon needs four facts
about each: a short label-safe code, whether to retry soon (transient),
whether the region cannot answer (a reason to fail over), and a message with
no secret value in it. Importing this costs botocore's exceptions, not a client.
"""

from __future__ import annotations

import asyncio
import errno

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from secretsync.source.protocol import (
    THROTTLE_CODES,
    TRANSIENT_CODES,
    UNAVAILABLE_CODES,
    SourceError,
)


def classify(secret_id: str, exc: BaseException) -> SourceError:
    """Turn a botocore/aiohttp exception into a SourceError (transient or permanent)."""
    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "ClientError")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        transient = code in TRANSIENT_CODES or status >= 500
        unavailable = code in UNAVAILABLE_CODES or (status >= 500 and code not in THROTTLE_CODES)
        message = str(error.get("Message") or code)
        return SourceError(secret_id, code, message, transient=transient, unavailable=unavailable)
    if isinstance(exc, NoCredentialsError):
        return SourceError(secret_id, "NoCredentials", str(exc), transient=False)
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        # not the network: this process (or the host) is out of file descriptors
        return SourceError(secret_id, "TooManyOpenFiles", exc.strerror or "", transient=True)
    if isinstance(
        exc,
        HTTPClientError
        | BotoConnectionError
        | aiohttp.ClientError
        | asyncio.TimeoutError
        | OSError,
    ):
        message = str(exc) or type(exc).__name__
        return SourceError(secret_id, "ConnectionError", message, transient=True)
    if isinstance(exc, BotoCoreError):
        return SourceError(secret_id, type(exc).__name__, str(exc), transient=False)
    return SourceError(secret_id, type(exc).__name__, "unexpected error", transient=True)
