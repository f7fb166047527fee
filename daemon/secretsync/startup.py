"""What ``run`` and ``once`` share at start-up, importable without the daemon's machinery.

Exit codes, the error that refuses a start, and where pending notifications
are kept. ``once`` imports this and not :mod:`secretsync.runtime` (watcher,
reloader, metrics server).
"""

from __future__ import annotations

import os
from pathlib import Path

from secretsync.config import Config
from secretsync.files import read_current
from secretsync.journal import digest_of

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class StartupError(Exception):
    """The daemon cannot start; ``str()`` is one line for the user, ``exit_code`` what to exit."""

    safe_message = True

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def current_digest(path: Path) -> str | None:
    """The digest of the file at ``path`` now (None when missing)."""
    data = read_current(path)
    return None if data is None else digest_of(data)


def state_dir_of(config: Config) -> Path | None:
    """The configured state directory with its symlinks resolved (None: beside each output)."""
    return None if config.state_dir is None else Path(os.path.realpath(config.state_dir))
