"""Start-up facts ``run`` and ``once`` share: the error that refuses a start, the
open-files limit, where pending notifications are kept and how a file is
recognised. Light to import: ``once`` does not import :mod:`secretsync.runtime.run`.
"""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path

from secretsync.config.model import Config
from secretsync.exitcodes import EXIT_USAGE
from secretsync.output.files import digest_file

# An output with a pending notification larger than this is not what we wrote (a
# rendered file is a few KiB; Secrets Manager holds at most 64 KiB per secret)
OUTPUT_DIGEST_MAX_BYTES = 64 * 1024 * 1024


class StartupError(Exception):
    """The daemon cannot start; ``str()`` is one line for the user, ``exit_code`` what to exit."""

    safe_message = True

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def current_digest(path: Path) -> str | None:
    """The digest of the file at ``path`` now, read in chunks; None when it is missing,
    not a regular file, or larger than OUTPUT_DIGEST_MAX_BYTES (not read: a huge file
    planted at an output's name costs neither memory nor minutes of hashing)."""
    return digest_file(path, max_bytes=OUTPUT_DIGEST_MAX_BYTES)


def state_dir_of(config: Config) -> Path | None:
    """The configured state directory with its symlinks resolved (None: beside each output)."""
    return None if config.state_dir is None else Path(os.path.realpath(config.state_dir))


def raise_fd_limit() -> tuple[int, int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit, best effort: (soft before, after, hard).

    An unlimited hard limit is not a valid soft limit for file descriptors on
    Linux, so the soft limit is then left as it is; so it is when setrlimit fails.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard not in (resource.RLIM_INFINITY, soft):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard
