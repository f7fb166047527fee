"""The exit codes of every command, in one place (the CLI is the only module that exits).

``0`` ok; ``1`` a runtime failure (a secret could not be synced, a check found
problems, the daemon could not be reached); ``2`` a usage or configuration
error, or a refused start (an output held by another process, an address in
use); ``128 + N`` stopped by signal ``N`` before the work was done (``run``: a
forced stop; ``once``: any stop).
"""

from __future__ import annotations

import signal

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def stopped_by(signum: int | None) -> int:
    """The exit code of a command stopped by ``signum`` (SIGTERM when not known)."""
    return 128 + (signum or signal.SIGTERM)
