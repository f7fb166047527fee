"""Command line: argument parsing and exit codes. The only module that exits.

Exit codes: 0 ok, 1 runtime failure (a secret could not be synced), 2 usage or
configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from secretsync import __version__, logs
from secretsync import watch as watch_files
from secretsync.agent import Agent, PlannedOutput
from secretsync.awsenv import resolve_region
from secretsync.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    ConfigError,
    load_config,
    parse_duration,
)
from secretsync.demo import run_demo
from secretsync.metrics import Metrics, check_health, health_url
from secretsync.notify import Notifier
from secretsync.sdnotify import SdNotifier
from secretsync.server import MetricsServer, MetricsServerError
from secretsync.source import SecretsSource, SourceError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _default_config() -> str:
    return os.environ.get("SECRETSYNC_CONFIG") or DEFAULT_CONFIG_PATH


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand (global options work before or after it)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        choices=logs.LEVELS,
        default=argparse.SUPPRESS,
        help="minimum level to log (default: info)",
    )
    common.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default=argparse.SUPPRESS,
        help="auto: console on a TTY, JSON lines otherwise (default: auto)",
    )
    with_config = argparse.ArgumentParser(add_help=False)
    with_config.add_argument(
        "-c",
        "--config",
        default=argparse.SUPPRESS,
        help=f"path to sync.yaml (default: $SECRETSYNC_CONFIG or {DEFAULT_CONFIG_PATH})",
    )

    parser = argparse.ArgumentParser(
        prog="secretsync",
        description="Keep Java client.properties files in step with AWS Secrets Manager.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"secretsync {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", parents=[common, with_config], help="run the daemon")
    run.add_argument(
        "--no-watch",
        action="store_true",
        help="do not watch output files or the config file (polling still works)",
    )

    once = sub.add_parser(
        "once", parents=[common, with_config], help="sync every output once, then exit"
    )
    once.add_argument(
        "--dry-run", action="store_true", help="show what would be written, values masked"
    )
    once.add_argument("--no-notify", action="store_true", help="do not tell dependent processes")

    sub.add_parser("check", parents=[common, with_config], help="validate the config and exit")

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="the whole loop against an embedded local Secrets Manager (no AWS account)",
    )
    demo.add_argument("--dir", type=Path, default=Path("secretsync-demo"), help="work directory")
    demo.add_argument(
        "--rotate-every", type=parse_duration, default=15.0, help="rotation period (default 15s)"
    )
    demo.add_argument("--port", type=int, default=9464, help="metrics port on 127.0.0.1")
    health = sub.add_parser(
        "health",
        parents=[common, with_config],
        help="exit 0 if the daemon's /healthz answers 200 (container HEALTHCHECK)",
    )
    health.add_argument(
        "--url", help="health URL (default: from the config's metrics.listen, else port 9464)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``secretsync`` console script and ``python -m secretsync``."""
    args = build_parser().parse_args(argv)
    logs.configure(getattr(args, "log_level", "info"), getattr(args, "log_format", "auto"))
    sys.exit(dispatch(args))


def dispatch(args: argparse.Namespace) -> int:
    """Run the chosen subcommand and return its exit code."""
    if args.command == "demo":
        return run_demo(args.dir, rotate_every_s=args.rotate_every, port=args.port)
    config_path = Path(getattr(args, "config", None) or _default_config())
    if args.command == "health":
        return _health(args.url, config_path)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"secretsync: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "check":
        ids = len(config.secret_ids)
        print(f"{config_path}: ok ({len(config.outputs)} outputs, {ids} secrets)")
        if resolve_region(config.aws.region) is None:
            print(
                "secretsync: warning: no AWS region: set aws.region, AWS_REGION "
                "or a region in the AWS config file",
                file=sys.stderr,
            )
        return EXIT_OK
    try:
        if args.command == "once":
            return asyncio.run(_once(config, dry_run=args.dry_run, notify=not args.no_notify))
        return asyncio.run(_run(config, config_path, watch=not args.no_watch))
    except SourceError as exc:  # raised only at start-up (no region)
        print(f"secretsync: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down
        return 130


def _health(url: str | None, config_path: Path) -> int:
    # A missing or broken config must not fail the health check: fall back to the default.
    if url is None:
        try:
            url = health_url(load_config(config_path).metrics.listen)
        except ConfigError:
            url = health_url(None)
    ok, message = check_health(url, timeout_s=3.0)
    print(message, file=sys.stdout if ok else sys.stderr)
    return EXIT_OK if ok else EXIT_FAILURE


def _source(config: Config, metrics: Metrics) -> SecretsSource:
    return SecretsSource(
        region=config.aws.region,
        endpoint_url=config.aws.endpoint_url,
        on_request=metrics.observe_request,
    )


async def _once(config: Config, *, dry_run: bool, notify: bool) -> int:
    metrics = Metrics()
    async with _source(config, metrics) as source:
        notifier = Notifier(config, metrics=metrics) if notify else None
        agent = Agent(config, source, metrics=metrics, notifier=notifier)
        if dry_run:
            return _print_plan(await agent.plan())
        await agent.cycle()
        if notifier is not None:
            await notifier.flush()  # no settle: the batch is complete
        return EXIT_OK if agent.all_current() else EXIT_FAILURE


def _print_plan(planned: Sequence[PlannedOutput]) -> int:
    failed = False
    for item in planned:
        out = item.config
        head = f"{out.path} ({out.format}, mode {out.mode:04o})"
        if item.error is not None:
            failed = True
            print(f"{head}: cannot render: {logs.scrub(item.error)}")
            continue
        print(f"{head}: {'would write' if item.would_write else 'unchanged'}")
        for key in item.keys:
            print(f"  {key}=********")
    return EXIT_FAILURE if failed else EXIT_OK


async def _run(config: Config, config_path: Path, *, watch: bool) -> int:
    log = logs.get_logger()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main_task = asyncio.current_task()
    assert main_task is not None
    sd = SdNotifier.from_environ()  # no-op unless started by systemd with Type=notify

    def on_stop(signum: int) -> None:
        # handlers only flip state; a second signal forces the exit
        if stop.is_set():
            log.warning("shutdown_forced", signal=signal.Signals(signum).name)
            main_task.cancel()
            return
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        sd.stopping()
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_stop, signum)

    metrics = Metrics()
    log.info("starting", version=__version__, config=str(config_path), outputs=len(config.outputs))
    try:
        async with _source(config, metrics) as source:
            notifier = Notifier(config, metrics=metrics)
            agent = Agent(config, source, metrics=metrics, notifier=notifier)
            sd.attach(agent)  # READY=1 after the first complete sync, STATUS=, WATCHDOG=1

            server = MetricsServer(metrics, agent.probes())
            reloader = watch_files.install(agent, config_path, watch=watch, sd=sd)
            reloader.add_listener(lambda _old, new: notifier.reconfigure(new))

            async def follow_listen(old: Config, new: Config) -> None:
                if old.metrics.listen != new.metrics.listen:
                    await server.reconfigure(new.metrics.listen)
                    log.info("metrics_moved", listen=new.metrics.listen)

            reloader.add_listener(follow_listen)
            loop.add_signal_handler(signal.SIGHUP, reloader.request, "sighup")
            try:
                await server.reconfigure(config.metrics.listen)
            except MetricsServerError as exc:
                print(f"secretsync: {exc}", file=sys.stderr)
                return EXIT_USAGE
            if server.running:
                log.info("metrics_listening", host=server.host, port=server.port)
            try:
                await agent.run(stop)
            finally:
                await server.stop()
    except asyncio.CancelledError:
        return 130
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
    log.info("stopped")
    return EXIT_OK
