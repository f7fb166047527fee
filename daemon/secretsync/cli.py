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
from secretsync.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config
from secretsync.metrics import Metrics
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
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``secretsync`` console script and ``python -m secretsync``."""
    args = build_parser().parse_args(argv)
    logs.configure(getattr(args, "log_level", "info"), getattr(args, "log_format", "auto"))
    sys.exit(dispatch(args))


def dispatch(args: argparse.Namespace) -> int:
    """Run the chosen subcommand and return its exit code."""
    config_path = Path(getattr(args, "config", None) or _default_config())
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"secretsync: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "check":
        ids = len(config.secret_ids)
        print(f"{config_path}: ok ({len(config.outputs)} outputs, {ids} secrets)")
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


def _source(config: Config, metrics: Metrics) -> SecretsSource:
    return SecretsSource(
        region=config.aws.region,
        endpoint_url=config.aws.endpoint_url,
        on_request=metrics.observe_request,
    )


async def _once(config: Config, *, dry_run: bool, notify: bool) -> int:
    metrics = Metrics()
    async with _source(config, metrics) as source:
        agent = Agent(config, source, metrics=metrics)
        if dry_run:
            return _print_plan(await agent.plan())
        await agent.cycle()
        # notify: wired by notify.py (issue: tell dependent processes)
        del notify
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

    def on_stop(signum: int) -> None:
        # handlers only flip state; a second signal forces the exit
        if stop.is_set():
            log.warning("shutdown_forced", signal=signal.Signals(signum).name)
            main_task.cancel()
            return
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_stop, signum)

    metrics = Metrics()
    log.info("starting", version=__version__, config=str(config_path), outputs=len(config.outputs))
    try:
        async with _source(config, metrics) as source:
            agent = Agent(config, source, metrics=metrics)

            reloader = watch_files.install(agent, config_path, watch=watch)
            loop.add_signal_handler(signal.SIGHUP, reloader.request, "sighup")
            await agent.run(stop)
    except asyncio.CancelledError:
        return 130
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
    log.info("stopped")
    return EXIT_OK
