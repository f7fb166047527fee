"""Command line: argument parsing and exit codes. The only module that exits.

Exit codes: 0 ok, 1 runtime failure (a secret could not be synced), 2 usage
or configuration error, 128 + N stopped by signal N before the work was done
(``run``: a forced stop; ``once``: any stop).

Each command imports only what it needs: ``--help``, ``check``, ``health``
and ``demo`` never import the AWS or HTTP libraries, so they start fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from secretsync import DEFAULT_CONFIG_PATH, LOG_LEVELS, __version__

if TYPE_CHECKING:
    from secretsync.config import Config
    from secretsync.plan import PlannedOutput
    from secretsync.signals import SignalCapture

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
T = TypeVar("T")


def _default_config() -> str:
    return os.environ.get("SECRETSYNC_CONFIG") or DEFAULT_CONFIG_PATH


def _positive_duration(text: str) -> float:
    """argparse type: a duration > 0 (``15s``, ``1m``, …)."""
    from secretsync.config_types import parse_duration  # noqa: PLC0415

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(
            'must be more than 0; expected a duration such as "500ms", "30s", "5m", "1h" '
            "or a number of seconds"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand (global options work before or after it)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
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
        "--rotate-every",
        type=_positive_duration,
        default=15.0,
        metavar="DURATION",
        help="rotation period, e.g. 15s or 1m (default 15s)",
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
    status = sub.add_parser(
        "status",
        parents=[common, with_config],
        help="outputs, versions and targets of a running daemon; exit 0 when all current "
        "and applied",
    )
    status.add_argument(
        "--url", help="status URL (default: from the config's metrics.listen, else port 9464)"
    )
    status.add_argument("--json", action="store_true", help="print the JSON document as it is")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``secretsync`` console script and ``python -m secretsync``."""
    args = build_parser().parse_args(argv)
    if args.command in ("run", "once"):
        from secretsync import logs  # noqa: PLC0415 (check, health and demo print, not log)

        logs.configure(getattr(args, "log_level", "info"), getattr(args, "log_format", "auto"))
        from secretsync.signals import capture_signals  # noqa: PLC0415

        # before any config read or network call: SIGHUP must never kill us
        with capture_signals() as signals:
            sys.exit(dispatch(args, signals))
    sys.exit(dispatch(args))


def dispatch(args: argparse.Namespace, signals: SignalCapture | None = None) -> int:
    """Run the chosen subcommand and return its exit code."""
    if args.command == "demo":
        from secretsync.demo import run_demo  # noqa: PLC0415

        return run_demo(args.dir, rotate_every_s=args.rotate_every, port=args.port)
    config_path = Path(getattr(args, "config", None) or _default_config())
    if args.command == "health":
        return _health(args.url, config_path)
    if args.command == "status":
        return _status(args.url, config_path, as_json=args.json)
    from secretsync.config import ConfigError, load_config  # noqa: PLC0415

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"secretsync: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "check":
        return _check(config, config_path)
    assert signals is not None
    from secretsync.startup import StartupError  # noqa: PLC0415

    try:
        if args.command == "once":
            if args.dry_run:
                return _dry_run(config)
            return _asyncio_run(_once(config, signals, notify=not args.no_notify))
        return _asyncio_run(_run(config, config_path, signals, watch=not args.no_watch))
    except StartupError as exc:
        print(f"secretsync: {exc}", file=sys.stderr)
        return exc.exit_code


def _check(config: Config, config_path: Path) -> int:
    from secretsync.awsenv import resolve_region  # noqa: PLC0415

    if resolve_region(config.aws.region) is None:
        print(
            "secretsync: warning: no AWS region: set aws.region, AWS_REGION or a region in the "
            "AWS config file",
            file=sys.stderr,
        )
    for name, target in sorted(config.notify.items()):
        # a bare `process` match can reach a JVM that has no SIGHUP handler (or has not
        # installed it yet): such a JVM exits, status 129
        if target.kind == "signal" and target.signal_name == "SIGHUP" and target.pidfile is None:
            print(
                f"secretsync: warning: notify.{name} sends SIGHUP to every process matching its "
                "`process` alone: a JVM without a SIGHUP handler, or one still starting, exits "
                "on it; add a `pidfile` the app writes once its handler is installed, or let "
                "the app read rotated credentials itself (secretsync-kafka) and send nothing, "
                "or restart it with SIGTERM and a `splay` (README: Java applications)",
                file=sys.stderr,
            )
    ids = len(config.secret_ids)
    print(f"{config_path}: ok ({len(config.outputs)} outputs, {ids} secrets)")
    return EXIT_OK


def _health(url: str | None, config_path: Path) -> int:
    from secretsync.config import ConfigError, load_config  # noqa: PLC0415
    from secretsync.health import check_health, health_url  # noqa: PLC0415

    # A missing or broken config must not fail the health check: fall back to the default.
    if url is None:
        try:
            listen = load_config(config_path).metrics.listen
        except ConfigError:
            url = health_url(None)
        else:
            if listen is None:
                print(
                    f"secretsync: metrics are disabled in {config_path} (metrics.listen: null); "
                    "give --url to check another address",
                    file=sys.stderr,
                )
                return EXIT_FAILURE
            url = health_url(listen)
    ok, message = check_health(url, timeout_s=3.0)
    print(message, file=sys.stdout if ok else sys.stderr)
    return EXIT_OK if ok else EXIT_FAILURE


def _status(url: str | None, config_path: Path, *, as_json: bool) -> int:
    import json  # noqa: PLC0415

    from secretsync.config import ConfigError, load_config  # noqa: PLC0415
    from secretsync.health import fetch_json, status_url  # noqa: PLC0415
    from secretsync.status import format_table, healthy  # noqa: PLC0415

    if url is None:
        try:
            listen = load_config(config_path).metrics.listen
        except ConfigError:
            listen = None
        url = status_url(listen)
    document, problem = fetch_json(url)
    if document is None:
        print(f"secretsync: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    print(json.dumps(document, indent=2) if as_json else format_table(document))
    return EXIT_OK if healthy(document) else EXIT_FAILURE


async def _once(config: Config, signals: SignalCapture, *, notify: bool) -> int:
    from secretsync.oneshot import run_once  # noqa: PLC0415

    return await run_once(config, signals, notify=notify)


def _dry_run(config: Config) -> int:
    from secretsync.oneshot import dry_run  # noqa: PLC0415

    return _print_plan(_asyncio_run(dry_run(config)))


def _asyncio_run(main: Coroutine[Any, Any, T]) -> T:
    import asyncio  # noqa: PLC0415 (not needed by check, health, --help)

    return asyncio.run(main)


def _print_plan(planned: Sequence[PlannedOutput]) -> int:
    from secretsync import logs  # noqa: PLC0415

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


async def _run(config: Config, config_path: Path, signals: SignalCapture, *, watch: bool) -> int:
    from secretsync.runtime import Runtime  # noqa: PLC0415
    from secretsync.sdnotify import SdNotifier  # noqa: PLC0415

    sd = SdNotifier.from_environ()  # no-op unless started by systemd with Type=notify
    return await Runtime(config_path, config, signals, watch=watch, sd=sd).run()
