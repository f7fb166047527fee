"""The runtime of ``secretsync run``: builds the pieces, supervises their tasks, stops them.

Start-up, in order: take every output's lock (another holder: exit 2), sweep
our stale temp files, bind the metrics server (address taken: exit 2), open
the source, deliver the notifications a previous run left pending, then run
the poller, the notifier, the reloader, the watcher and the systemd watchdog
as supervised tasks in one :class:`asyncio.TaskGroup`.

Stop (SIGTERM/SIGINT), in order and within ``shutdown_timeout``: no new poll
(a cycle in flight is cancelled, its writes finish and are recorded), the
watcher and reloads, pending notifications delivered, the metrics server.
A second signal, or the deadline, forces the stop: whatever is left is
cancelled (journal records stay for the next start) and the exit code is
128 + the signal number. A clean stop exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from secretsync import __version__, backoff, logs
from secretsync.config.model import Config
from secretsync.exitcodes import EXIT_OK, stopped_by
from secretsync.metrics import Metrics
from secretsync.notify.notifier import Notifier
from secretsync.output.locks import LockRefused
from secretsync.runtime.compose import Core
from secretsync.runtime.readiness import alive, report_cycles
from secretsync.runtime.reload import RELOAD_SETTLE_MAX_S, RELOAD_SETTLE_S, Reloader, ReloadRefused
from secretsync.runtime.sdnotify import SdNotifier
from secretsync.runtime.signals import SignalCapture
from secretsync.runtime.startup import StartupError
from secretsync.runtime.supervise import Supervisor
from secretsync.runtime.watch import Watcher
from secretsync.source.protocol import SecretSource
from secretsync.source.region import resolve_region
from secretsync.sync.poller import Poller
from secretsync.sync.syncer import Syncer

if TYPE_CHECKING:
    from secretsync.push.sqs import PushQueue
    from secretsync.serve.server import MonitoringServer
    from secretsync.serve.websec import WebSecurity

PUSH_SETUP_CAP_S = 60.0  # the longest wait before push set-up is tried again
FORCED_MARGIN_S = 0.5  # kept from the deadline for cancelling what is left


class Runtime:
    """Everything ``secretsync run`` runs. The constructor does no I/O.

    ``source`` replaces the Secrets Manager client (tests use an in-memory
    one); ``serve_metrics=False`` leaves the metrics server out whatever the
    config says; ``sd`` is the systemd notifier (a no-op outside systemd).
    """

    def __init__(
        self,
        config_path: Path,
        config: Config,
        signals: SignalCapture,
        *,
        watch: bool = True,
        source: SecretSource | None = None,
        metrics: Metrics | None = None,
        sd: SdNotifier | None = None,
        serve_metrics: bool = True,
        reload_settle_s: float = RELOAD_SETTLE_S,
        reload_settle_max_s: float = RELOAD_SETTLE_MAX_S,
        retry_base_s: float = backoff.BASE_S,
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.signals = signals
        self.metrics = metrics or Metrics()
        self.sd = sd or SdNotifier({})
        self._source = source
        self._watch = watch
        self._serve_metrics = serve_metrics
        self._reload_settle = (reload_settle_s, reload_settle_max_s)
        self._retry_base_s = retry_base_s
        self.supervisor = Supervisor(self.metrics, retry_base_s=retry_base_s)
        self.core = Core(config, self.metrics, with_notifier=True, writes_in_thread=True)
        self.journal, self.writer = self.core.journal, self.core.writer
        assert self.core.notifier is not None
        self.notifier: Notifier = self.core.notifier
        self.syncer: Syncer | None = None
        self.poller: Poller | None = None
        self.reloader: Reloader | None = None
        self.watcher: Watcher | None = None
        self.server: MonitoringServer | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stop: asyncio.Event | None = None
        self._stop_signal: int | None = None
        self._forced: asyncio.Event | None = None
        self._reload_at_start = False
        self._push_queue: PushQueue | None = None
        self._stopping_cleanly = False
        self._log = logs.get_logger()

    def __repr__(self) -> str:
        return f"Runtime(config_path={str(self.config_path)!r}, tasks={sorted(self._tasks)})"

    # -- signals ---------------------------------------------------------------------------

    def _on_stop(self, signum: int, forced: bool) -> None:
        assert self._stop is not None and self._forced is not None
        if self._stop_signal is None:
            self._stop_signal = signum
        name = _signal_name(signum)
        if forced or self._stop.is_set():
            self._log.warning("shutdown_forced", signal=name, reason="second signal")
            self._forced.set()
        else:
            self._log.info("shutdown_requested", signal=name)
        self.sd.stopping()
        self._stop.set()

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop as if ``signum`` had arrived (a second call forces the stop)."""
        assert self._stop is not None
        self._on_stop(signum, self._stop.is_set())

    def _on_reload(self) -> None:
        if self.reloader is not None:
            self.reloader.request("sighup")
        elif not self._reload_at_start:
            # during start-up: reload once the reloader exists (the config may have
            # changed since it was read)
            self._log.info("config_reload_requested", trigger="sighup", during="start-up")
            self._reload_at_start = True

    # -- the whole life --------------------------------------------------------------------

    async def run(self) -> int:
        """Start, run until stopped, stop in order. Returns the exit code.

        Raises StartupError when the daemon cannot start (its exit code says how).
        """
        self._stop, self._forced = asyncio.Event(), asyncio.Event()
        self.signals.attach(asyncio.get_running_loop(), self._on_stop, self._on_reload)
        try:
            async with contextlib.AsyncExitStack() as stack:
                stack.callback(self.core.close)
                await asyncio.sleep(0)  # let signals seen during start-up arrive
                if self._stop.is_set():
                    return self._exit_code(clean=True)
                await self._start(stack)
                async with asyncio.TaskGroup() as group:
                    self._spawn(group)
                    await self._stop.wait()
                    clean = await self._shutdown()
                self._log.info("stopped", clean=clean)
                return self._exit_code(clean=clean)
        finally:
            self.signals.detach()

    def _exit_code(self, *, clean: bool) -> int:
        if clean:
            return EXIT_OK
        return stopped_by(self._stop_signal)

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        config = self.config
        self._log.info(
            "starting",
            version=__version__,
            config=str(self.config_path),
            outputs=len(config.outputs),
        )
        syncer = self.syncer = await self.core.start(stack, self._source)
        self.poller = Poller(syncer, retry_base_s=self._retry_base_s)
        report_cycles(self.sd, syncer, self.poller)
        if self._serve_metrics:
            await self._start_server(stack)
        self.reloader = Reloader(
            self.config_path,
            lambda: self.config,
            self._apply,
            metrics=self.metrics,
            sd=self.sd,
            settle_s=self._reload_settle[0],
            settle_max_s=self._reload_settle[1],
        )
        if self._reload_at_start:
            self.reloader.request("sighup")
        if self._watch:
            self.watcher = Watcher(
                self.config_path, lambda: list(syncer.outputs), syncer.repair, self.reloader
            )

    async def _start_server(self, stack: contextlib.AsyncExitStack) -> None:
        from secretsync.serve.server import MonitoringServer, MonitoringServerError, Probes  # noqa: PLC0415
        from secretsync.serve.status import snapshot  # noqa: PLC0415
        from secretsync.serve.websec import web_security  # noqa: PLC0415

        assert self.syncer is not None
        syncer, supervisor, notifier = self.syncer, self.supervisor, self.notifier
        server = MonitoringServer(
            self.metrics,
            Probes(
                last_poll_started=lambda: syncer.last_cycle_started,
                poll_interval_s=lambda: syncer.config.poll.interval_s,
                not_ready=syncer.not_ready,
                stale=syncer.stale,
                failing_tasks=supervisor.failing,
                status=lambda: snapshot(syncer, notifier),
            ),
        )
        try:
            server.secure(web_security(self.config.metrics))
            await server.reconfigure(self.config.metrics.listen)
        except MonitoringServerError as exc:
            raise StartupError(str(exc)) from None
        stack.push_async_callback(server.stop)
        self.server = server
        if server.running:
            scheme = server.url.partition(":")[0]
            self._log.info("metrics_listening", host=server.host, port=server.port, scheme=scheme)

    def _spawn(self, group: asyncio.TaskGroup) -> None:
        assert self.poller is not None and self.reloader is not None and self.syncer is not None
        jobs: dict[str, Callable[[], Awaitable[None]]] = {
            "poll": self.poller.run,
            "notify": self.notifier.serve,
            "reload": self.reloader.serve,
        }
        if self.watcher is not None:
            jobs["watch"] = self.watcher.run
        if self.sd.watchdog_interval_s is not None:
            syncer = self.syncer
            jobs["sd-watchdog"] = lambda: self.sd.watchdog(lambda: alive(syncer))
        if self.config.push is not None:
            jobs["push"] = self._push
        for name, job in jobs.items():
            self._tasks[name] = group.create_task(self.supervisor.run(name, job), name=name)

    async def _push(self) -> None:
        """The push task: set up the queue (retrying with backoff), then read it.

        Every failure is counted in ``secretsync_push_errors_total{reason}``.
        """
        from secretsync.push.listener import PushError, PushListener  # noqa: PLC0415
        from secretsync.push.sqs import PushQueue  # noqa: PLC0415

        push = self.config.push
        assert push is not None and self.poller is not None and self.syncer is not None
        self.metrics.declare_push()
        queue = PushQueue(
            region=resolve_region(self.config.aws.region),
            endpoint_url=push.endpoint_url,
            queue_url=push.sqs_queue_url,
            topic_arn=push.sns_topic_arn,
            wait_s=push.wait_s,
            identity=push.identity,
            heartbeat_s=push.heartbeat_s,
        )
        failures = 0
        while True:
            try:
                await queue.start()
                break
            except PushError as exc:
                failures += 1
                self.metrics.push_errors.labels(reason=exc.reason).inc()
                delay_s = backoff.delay_s(
                    failures,
                    random.Random(),  # noqa: S311 (jitter, not crypto)
                    base_s=self._retry_base_s,
                    cap_s=PUSH_SETUP_CAP_S,
                )
                self._log.warning(
                    "push_setup_failed",
                    error=str(exc),
                    reason=exc.reason,
                    retry_in_s=round(delay_s, 2),
                )
                await asyncio.sleep(delay_s)
        self._push_queue = queue
        self._log.info(
            "push_listening",
            own_queue=queue.own_queue,
            queue=queue.queue_name,
            identity=queue.identity,
        )
        syncer = self.syncer

        def retry_at(secret_id: str) -> float | None:
            state = syncer.secrets.get(secret_id)
            return state.retry_at if state is not None else None

        listener = PushListener(
            queue,
            secret_ids=lambda: syncer.config.secret_ids,
            hint=self.poller.hint,
            metrics=self.metrics,
            retry_at=retry_at,
            retry_base_s=self._retry_base_s,
        )
        try:
            await listener.run()
        except asyncio.CancelledError:
            listener.summarise(force=True)
            # a clean stop removes our queue in order; a forced one has no time for it
            if not self._stopping_cleanly:
                await queue.close(remove_own_queue=False)
            raise
        except BaseException:
            await queue.close(remove_own_queue=True)  # the restart makes a new one
            raise

    # -- reloads ---------------------------------------------------------------------------

    async def _apply(self, old: Config, new: Config) -> None:
        """Switch every piece to ``new``, all or nothing (the reloader's ``apply``).

        Every step that can fail runs before anything switches, in order: load a
        changed ``web_config`` (TLS files), lock the new outputs, bind a changed
        ``metrics.listen``. A failure undoes the steps before it and raises
        ReloadRefused: every part stays on ``old``. Then the switch, which cannot
        fail: syncer, writer, notifier, server security, the runtime's config
        (the one owner of the live config), watcher, poller.
        """
        assert self.syncer is not None and self.poller is not None
        security = await self._security_for(old, new)
        old_paths = {o.path for o in old.outputs}
        added = [o.path for o in new.outputs if o.path not in old_paths]
        try:
            await asyncio.to_thread(self.writer.manage, added)
        except LockRefused as exc:
            raise ReloadRefused(str(exc)) from None
        moved = self.server is not None and old.metrics.listen != new.metrics.listen
        if moved:
            assert self.server is not None
            from secretsync.serve.server import MonitoringServerError  # noqa: PLC0415

            try:
                await self.server.reconfigure(new.metrics.listen)
            except MonitoringServerError as exc:
                self.writer.unmanage(added)
                raise ReloadRefused(str(exc)) from None
        # -- nothing below can fail: the switch ------------------------------------------
        removed = self.syncer.reconfigure(new)
        self.writer.unmanage(removed.paths)
        self.notifier.reconfigure(new)
        self.config = new
        restart = [name for name in ("aws", "push") if getattr(old, name) != getattr(new, name)]
        if restart:
            # the AWS clients are built once, at start
            self._log.warning("config_restart_needed", fields=restart)
        if security is not None and self.server is not None:
            self.server.secure(security[0])
            self._log.info("metrics_secured", scheme=self.server.url.partition(":")[0])
        if moved:
            self._log.info("metrics_moved", listen=new.metrics.listen)
        if self.watcher is not None:
            self.watcher.on_reload()
        self.poller.wake()

    async def _security_for(self, old: Config, new: Config) -> tuple[WebSecurity | None] | None:
        """The new TLS/auth settings of a reload, loaded, when they changed (else None)."""
        from secretsync.serve.websec import TlsError, web_security  # noqa: PLC0415

        same = (old.metrics.web_config, old.metrics.open_paths) == (
            new.metrics.web_config,
            new.metrics.open_paths,
        )
        if self.server is None or same:
            return None
        security = web_security(new.metrics)
        if security is not None and security.tls is not None:
            try:
                await asyncio.to_thread(security.tls.load)
            except TlsError as exc:
                raise ReloadRefused(str(exc)) from None
        return (security,)

    # -- stop ------------------------------------------------------------------------------

    async def _shutdown(self) -> bool:
        """Stop in order within ``shutdown_timeout``; False when it had to be forced."""
        assert self._forced is not None
        deadline_s = max(0.0, self.config.shutdown_timeout_s - FORCED_MARGIN_S)
        ordered = asyncio.create_task(self._stop_in_order(), name="shutdown")
        forced = asyncio.create_task(self._forced.wait(), name="forced")
        done, _ = await asyncio.wait(
            {ordered, forced}, timeout=deadline_s, return_when=asyncio.FIRST_COMPLETED
        )
        forced.cancel()
        clean = ordered in done and ordered.exception() is None
        if not clean:
            if ordered not in done:
                reason = "second signal" if self._forced.is_set() else "shutdown_timeout"
                self._log.warning("shutdown_forced", reason=reason, timeout_s=deadline_s)
            ordered.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await ordered
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        if self.server is not None:
            await self.server.stop()
        return clean

    async def _stop_in_order(self) -> None:
        assert self.syncer is not None
        # 1. no new poll nor push; a cycle in flight is cancelled, its writes finish and
        #    are recorded; a queue of our own is removed
        self._stopping_cleanly = True
        await self._cancel("push")
        if self._push_queue is not None:
            await self._push_queue.close(remove_own_queue=True)
        await self._cancel("poll")
        await self.writer.drain()
        self.syncer.submit_written()
        # 2. nothing may touch the files any more: the watcher and reloads stop
        if self.watcher is not None:
            self.watcher.stop()
        await self._cancel("watch")
        await self._cancel("reload")
        # 3. every pending notification is delivered
        await self.notifier.flush()
        await self._cancel("notify")
        # 4. the metrics server goes last, so the stop can be watched to the end
        if self.server is not None:
            await self.server.stop()
        await self._cancel("sd-watchdog")

    async def _cancel(self, name: str) -> None:
        task = self._tasks.get(name)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)
