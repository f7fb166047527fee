"""The composition root: the collaborators ``run`` and ``once`` share, built in one place.

:class:`Core` constructs the journal, the writer, the notifier and (once the
source is open) the syncer, each given its collaborators at construction.
:meth:`Core.start` is the start-up both commands go through, in order:

1. the soft open-files limit is raised to the hard one (once, for the whole
   process: a flood on the metrics port, or many outputs, must not starve the
   AWS calls);
2. every output's lock is taken and our stale temp files swept (a lock held by
   another process, or not a regular file, or too many outputs for the limit:
   :class:`StartupError`, exit 2, nothing written), in a thread, while the AWS
   libraries are imported;
3. the source is opened (Secrets Manager unless one is given; no region or no
   client: :class:`StartupError`);
4. the syncer is built;
5. notifications a previous run left pending are delivered.

``run`` adds the poller, the server, the reloader and the watcher around it
(:mod:`secretsync.runtime.run`); ``once`` runs one cycle
(:mod:`secretsync.runtime.once`). Importing this costs neither the AWS stack
nor, for ``once`` without targets, the notifier.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from secretsync import logs
from secretsync.config.model import Config
from secretsync.metrics import Metrics
from secretsync.output.journal import Journal
from secretsync.output.locks import LockRefused
from secretsync.output.writer import OutputWriter
from secretsync.runtime.startup import StartupError, current_digest, raise_fd_limit, state_dir_of
from secretsync.source.protocol import SecretSource, SourceError
from secretsync.source.region import resolve_region
from secretsync.sync.syncer import Syncer

if TYPE_CHECKING:
    from secretsync.notify.notifier import Notifier


class Core:
    """The shared collaborators of one process. The constructor does no I/O.

    ``with_notifier``: build the journal and the notifier (``run`` always does,
    since a reload may add targets; ``once`` only when it has targets to tell).
    ``writes_in_thread``: the writer's file system work runs in worker threads
    (``run``: the loop keeps serving meanwhile) or on the loop (``once``; see
    :class:`~secretsync.output.writer.OutputWriter`).
    """

    def __init__(
        self, config: Config, metrics: Metrics, *, with_notifier: bool, writes_in_thread: bool
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.journal: Journal | None = None
        self.notifier: Notifier | None = None
        if with_notifier:
            # the notifier machinery (targets, /proc scans, HTTP) only when it can be used
            from secretsync.notify.notifier import Notifier  # noqa: PLC0415

            self.journal = Journal(state_dir_of(config))
        self.writer = OutputWriter(metrics, journal=self.journal, in_thread=writes_in_thread)
        if self.journal is not None:
            self.notifier = Notifier(
                config, metrics=metrics, journal=self.journal, directory_of=self.writer.directory
            )
        self._syncer: Syncer | None = None

    def __repr__(self) -> str:
        return f"Core(outputs={len(self.config.outputs)}, started={self._syncer is not None})"

    @property
    def syncer(self) -> Syncer:
        """The syncer (after :meth:`start`)."""
        if self._syncer is None:
            raise RuntimeError("Core.start() has not run")
        return self._syncer

    async def start(
        self, stack: contextlib.AsyncExitStack, source: SecretSource | None = None
    ) -> Syncer:
        """Start-up in order (see the module docstring). Raises StartupError; what was
        opened is closed by ``stack``, and the locks by :meth:`close`."""
        log = logs.get_logger()
        before, soft, hard = raise_fd_limit()
        log.debug("fd_limit", soft_before=before, soft=soft, hard=hard)
        paths = [o.path for o in self.config.outputs]
        locking = asyncio.ensure_future(asyncio.to_thread(self.writer.manage, paths))
        try:
            if source is None:
                # the AWS stack is imported while the locks are taken (≈ 0.3 s of file
                # system calls for 1,000 outputs, in a thread): the import is Python work,
                # the locks wait on the kernel; the client is made once the locks are held
                await asyncio.sleep(0)  # the thread starts first
                import secretsync.source.secretsmanager  # noqa: F401, PLC0415
        finally:
            try:
                await locking
            except LockRefused as exc:
                raise StartupError(str(exc)) from None
        source = await self.open_source(stack, source)
        self._syncer = Syncer(
            self.config, source, self.writer, metrics=self.metrics, notifier=self.notifier
        )
        if self.notifier is not None:
            replayed = await asyncio.to_thread(self.notifier.replay, paths, current_digest)
            if replayed:
                log.info("notify_pending_from_last_run", outputs=replayed)
        return self._syncer

    async def open_source(
        self, stack: contextlib.AsyncExitStack, source: SecretSource | None = None
    ) -> SecretSource:
        """``source``, or Secrets Manager opened on ``stack``. Raises StartupError."""
        if source is not None:
            return source
        # the AWS stack is heavy: imported only when Secrets Manager is really used
        from secretsync.source.secretsmanager import open_source  # noqa: PLC0415

        aws = self.config.aws
        try:
            source = await open_source(stack, aws, self.metrics, region=resolve_region(aws.region))
        except SourceError as exc:
            raise StartupError(str(exc)) from None
        if aws.failover_region is not None:
            for secret_id in self.config.secret_ids:
                self.metrics.failover_active.labels(secret=secret_id).set(0)
        return source

    def close(self) -> None:
        """Release the outputs' locks (the writer's). Idempotent."""
        self.writer.close()
