"""What the daemon knows about each secret and each output, and what a pass produced.

Plain data: the syncer and the writer update these records, the metrics
server, sd_notify and the status view read them. Nothing here does I/O. The
``repr`` of every record is safe to log (no values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from secretsync.config.model import OutputConfig
from secretsync.source.protocol import SecretValue, SourceError


@dataclass
class SecretState:
    """One secret: the version held, and how its last check went."""

    secret_id: str
    version_id: str | None = None
    value: SecretValue | None = None
    failures: int = 0  # consecutive transient failures
    retry_at: float = 0.0  # monotonic; 0 = check at every regular cycle
    error: SourceError | None = None
    checked_ok: bool = False  # the last check succeeded
    checked_at: float | None = None  # wall time of the last successful check
    region: str | None = None  # the region that answered the last successful check

    def __repr__(self) -> str:
        return (
            f"SecretState(secret_id={self.secret_id!r}, version_id={self.version_id!r}, "
            f"failures={self.failures}, error={self.error and self.error.code!r})"
        )


@dataclass
class OutputState:
    """One output file: what was last written or confirmed, and how the last attempt went."""

    config: OutputConfig
    last_bytes: bytes | None = None  # what we last wrote or confirmed on disk
    confirmed_at: float | None = None  # wall time the output was last confirmed current
    written_at: float | None = None  # wall time its content last changed on disk
    versions: dict[str, str] = field(default_factory=dict)  # secret id → version rendered
    ok: bool = False  # the last attempt succeeded
    dirty: bool = True  # must be (re-)rendered at the next cycle
    error: str | None = None  # for the log: may carry an AWS message or the secret's key names
    error_code: str | None = None  # for /status: an AWS code, RenderError or WriteError
    initial: bool = True  # no successful sync yet in this process

    def __repr__(self) -> str:
        return f"OutputState(path={str(self.config.path)!r}, ok={self.ok}, dirty={self.dirty})"

    @property
    def path(self) -> Path:
        return self.config.path


@dataclass(frozen=True)
class WrittenFile:
    """An output whose content changed on disk in a pass."""

    path: Path
    targets: tuple[str, ...]
    initial: bool  # first sync of this output since the daemon started
    digest: str = ""  # sha256 of the bytes written (identifies the content, not a value)


@dataclass
class CycleReport:
    """What one cycle did; logged as the ``poll_cycle`` summary line."""

    secrets_checked: int = 0
    secrets_changed: list[str] = field(default_factory=list)
    files_written: list[WrittenFile] = field(default_factory=list)
    errors: int = 0
    duration_s: float = 0.0
