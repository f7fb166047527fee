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
from secretsync.exitcodes import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from secretsync.config.model import Config
    from secretsync.runtime.signals import SignalCapture
    from secretsync.serve.client import ClientOptions
    from secretsync.sync.plan import PlannedOutput

T = TypeVar("T")
LOG_FORMATS = ("auto", "json", "console")
# option → (environment variable, allowed values, default); the option wins over the variable
LOG_ENV = {
    "log_level": ("SECRETSYNC_LOG_LEVEL", LOG_LEVELS, "info"),
    "log_format": ("SECRETSYNC_LOG_FORMAT", LOG_FORMATS, "auto"),
}
LOGGING_COMMANDS = ("run", "once")  # the commands whose work is logged (the others print)
# the first delay of `run`'s own retries (push set-up and reading, task restarts, failed
# poll cycles), each next one doubling up to its cap; tests that inject failures lower it
RETRY_BASE_ENV = "SECRETSYNC_RETRY_BASE"
RETRY_BASE_MIN_S, RETRY_BASE_MAX_S = 0.01, 60.0

# Each subcommand's --help: what it does, then examples (kept as written).
HELP: dict[str, tuple[str, str]] = {
    "run": (
        "Run the daemon: poll Secrets Manager, rewrite each output when its secrets "
        "change, notify the targets, serve /metrics /healthz /readyz /status, repair "
        "tampered outputs and reload the config when it changes (or on SIGHUP). Stops "
        "on SIGTERM/SIGINT within shutdown_timeout.",
        "examples:\n"
        "  secretsync run -c /etc/secretsync/sync.yaml\n"
        "  SECRETSYNC_LOG_LEVEL=debug secretsync run --no-watch",
    ),
    "once": (
        "Sync every output once, deliver the notifications, then exit: 0 when every "
        "output is current, 1 when one could not be synced. For init containers and "
        "cron. --dry-run fetches and renders but writes nothing: it lists each output's "
        "keys, with the values of static properties shown and every value that came "
        "from a secret masked.",
        "examples:\n  secretsync once -c sync.yaml\n  secretsync once -c sync.yaml --dry-run",
    ),
    "check": (
        "Validate the config and exit: 0 when it is valid, 2 (naming each field) when "
        "not. Without --online nothing leaves the machine. With --online it also asks "
        "AWS, read-only, whether every secret exists, has an AWSCURRENT version and "
        "holds every key the config needs, and whether the credentials may call what "
        "the config needs (the push queue or topic included); each problem is named, "
        "never a value, and the exit code is 1.",
        "examples:\n  secretsync check -c sync.yaml\n  secretsync check -c sync.yaml --online",
    ),
    "health": (
        "Exit 0 when a running daemon's /healthz answers 200, else 1: a container "
        "HEALTHCHECK or a liveness probe. The URL comes from the config's "
        "metrics.listen unless --url is given.",
        "examples:\n  secretsync health\n  secretsync health --url http://127.0.0.1:9464/healthz",
    ),
    "status": (
        "Ask a running daemon for /status and print its outputs (current, applied, "
        "when written), secrets (version held) and targets (last outcome); exit 0 "
        "when every output is current and applied. Never shows a value.",
        "examples:\n"
        "  secretsync status -c /etc/secretsync/sync.yaml\n"
        "  secretsync status --url http://127.0.0.1:9464/status --json",
    ),
    "demo": (
        "The whole loop on this machine with no AWS account: an embedded local "
        "Secrets Manager with rotating sample secrets, the daemon, and a stand-in app "
        "that reloads on SIGHUP. Ctrl-C stops everything it started.",
        "examples:\n"
        "  secretsync demo\n"
        "  secretsync demo --rotate-every 1m30s --port 9465   (make demo PORT=9465)",
    ),
}


def _default_config() -> str:
    return os.environ.get("SECRETSYNC_CONFIG") or DEFAULT_CONFIG_PATH


def _positive_duration(text: str) -> float:
    """argparse type: a duration > 0 (``15s``, ``1m``, ``1m30s``, …)."""
    from secretsync.config.fields import DURATION_HELP, parse_duration  # noqa: PLC0415

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0; expected {DURATION_HELP}")
    return value


def _columns() -> int:
    """The terminal's width as :func:`shutil.get_terminal_size` finds it: ``$COLUMNS``,
    else the width of the terminal on stdout, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's help layout, made cheap to build: a description is wrapped at 79
    columns, examples (text with line breaks) are kept as written.

    argparse builds a formatter at every ``add_argument`` (to check the metavar) and
    the stock one imports :mod:`shutil` (with bz2 and lzma) for the terminal's width:
    ≈ 5 ms of ``check``'s start. This one asks the terminal itself.
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, _columns() - 2 if width is None else width
        )

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:  # examples: laid out as written
            return super()._fill_text(text, width, indent)
        import textwrap  # noqa: PLC0415 (only --help needs it)

        return textwrap.fill(text, 79, initial_indent=indent, subsequent_indent=indent)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand (global options work before or after it)."""
    common = argparse.ArgumentParser(add_help=False, formatter_class=_Formatter)
    common.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=argparse.SUPPRESS,
        help="minimum level to log (default: $SECRETSYNC_LOG_LEVEL, else info)",
    )
    common.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=argparse.SUPPRESS,
        help="auto: console on a TTY, JSON lines otherwise; under json every fatal error "
        "is a JSON log line too (default: $SECRETSYNC_LOG_FORMAT, else auto)",
    )
    with_config = argparse.ArgumentParser(add_help=False, formatter_class=_Formatter)
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
        formatter_class=_Formatter,
    )
    parser.add_argument("-V", "--version", action="version", version=f"secretsync {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", parents=[common, with_config], help="run the daemon", formatter_class=_Formatter
    )
    run.add_argument(
        "--no-watch",
        action="store_true",
        help="do not watch output files or the config file (polling still works)",
    )

    once = sub.add_parser(
        "once",
        parents=[common, with_config],
        help="sync every output once, then exit",
        formatter_class=_Formatter,
    )
    once.add_argument(
        "--dry-run",
        action="store_true",
        help="show what would be written: static values shown, secret values masked",
    )
    once.add_argument("--no-notify", action="store_true", help="do not tell dependent processes")

    check = sub.add_parser(
        "check",
        parents=[common, with_config],
        help="validate the config and exit",
        formatter_class=_Formatter,
    )
    check.add_argument(
        "--online",
        action="store_true",
        help="also check with AWS, read-only, that every secret, key and permission the "
        "config needs is there (exit 1 naming each problem)",
    )

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="the whole loop against an embedded local Secrets Manager (no AWS account)",
        formatter_class=_Formatter,
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
    client = argparse.ArgumentParser(add_help=False, formatter_class=_Formatter)
    client.add_argument(
        "--cacert",
        metavar="FILE",
        help="CA bundle to verify the server's certificate (default with a TLS config: trust "
        "exactly its tls_server_config.cert_file)",
    )
    client.add_argument(
        "--cert", metavar="FILE", help="client certificate (default: $SECRETSYNC_CLIENT_CERT)"
    )
    client.add_argument(
        "--key", metavar="FILE", help="its private key (default: $SECRETSYNC_CLIENT_KEY)"
    )
    client.add_argument(
        "--user",
        help="basic-auth user (default: $SECRETSYNC_USER); the password is read from "
        "$SECRETSYNC_PASSWORD, else --password-file, else asked on a terminal",
    )
    client.add_argument("--password-file", metavar="FILE", help="file holding the password")
    health = sub.add_parser(
        "health",
        parents=[common, with_config, client],
        help="exit 0 if the daemon's /healthz answers 200 (container HEALTHCHECK)",
        formatter_class=_Formatter,
    )
    health.add_argument(
        "--url", help="health URL (default: from the config's metrics.listen, else port 9464)"
    )
    status = sub.add_parser(
        "status",
        parents=[common, with_config, client],
        help="outputs, versions and targets of a running daemon; exit 0 when all current "
        "and applied",
        formatter_class=_Formatter,
    )
    status.add_argument(
        "--url", help="status URL (default: from the config's metrics.listen, else port 9464)"
    )
    status.add_argument("--json", action="store_true", help="print the JSON document as it is")
    _describe(sub)
    return parser


def _describe(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Give each subcommand its description and examples (:data:`HELP`), laid out as written."""
    for name, parser in sub.choices.items():
        description, epilog = HELP.get(name, ("", None))
        parser.description = description or None  # wrapped by _Formatter
        parser.epilog = epilog


def _log_options(args: argparse.Namespace) -> str | None:
    """Set ``args.log_level`` / ``args.log_format``: the option, else its environment
    variable, else the default. Returns a problem for a variable set to something else."""
    for option, (variable, allowed, default) in LOG_ENV.items():
        if getattr(args, option, None) is not None:
            continue
        value = os.environ.get(variable, "").strip().lower() or default
        if value not in allowed:
            shown = os.environ[variable][:40]
            return f"{variable}={shown!r} is not allowed; allowed: {', '.join(allowed)}"
        setattr(args, option, value)
    return None


def _json_errors(args: argparse.Namespace) -> bool:
    """True when fatal errors are to be JSON log lines: the logs are JSON (``run`` and
    ``once`` under ``auto`` with stderr not a terminal), or JSON was asked for."""
    if args.log_format == "auto" and args.command in LOGGING_COMMANDS:
        return not sys.stderr.isatty()
    return bool(args.log_format == "json")


def _report(
    args: argparse.Namespace, event: str, text: str, *, level: str = "error", **fields: object
) -> None:
    """Report a problem (an error that ends the command, or a warning): one JSON log
    line ``event`` (with ``fields``) under JSON logs, else ``secretsync: TEXT`` on stderr."""
    if not _json_errors(args):
        print(f"secretsync: {text}", file=sys.stderr)
        return
    from secretsync import logs  # noqa: PLC0415

    if args.command not in LOGGING_COMMANDS:  # run and once configured it already
        logs.configure(args.log_level, "json")
    getattr(logs.get_logger(), level)(event, **fields)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``secretsync`` console script and ``python -m secretsync``."""
    args = build_parser().parse_args(argv)
    problem = _log_options(args)
    if problem is not None:
        print(f"secretsync: {problem}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    if args.command in LOGGING_COMMANDS:
        from secretsync import logs  # noqa: PLC0415 (check, health and demo print, not log)

        logs.configure(args.log_level, args.log_format)
        from secretsync.runtime.signals import capture_signals  # noqa: PLC0415

        # before any config read or network call: SIGHUP must never kill us
        with capture_signals() as signals:
            sys.exit(dispatch(args, signals))
    sys.exit(dispatch(args))


def dispatch(args: argparse.Namespace, signals: SignalCapture | None = None) -> int:
    """Run the chosen subcommand and return its exit code."""
    if args.command == "demo":
        from secretsync.demo.command import run_demo  # noqa: PLC0415

        return run_demo(args.dir, rotate_every_s=args.rotate_every, port=args.port)
    config_path = Path(getattr(args, "config", None) or _default_config())
    if args.command in ("health", "status"):
        config = _config_if_readable(config_path)
        try:
            options = _client_options(args, config)
        except OSError as exc:
            print(f"secretsync: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if args.command == "health":
            return _health(args.url, config_path, config, options)
        return _status(args.url, config, options, as_json=args.json)
    from secretsync.config.model import ConfigError, load_config  # noqa: PLC0415

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        _report(
            args, "config_error", f"config error: {exc}", config=str(config_path), error=str(exc)
        )
        return EXIT_USAGE
    if args.command == "check":
        return _check(config, config_path, args)
    assert signals is not None
    from secretsync.runtime.startup import StartupError  # noqa: PLC0415

    try:
        if args.command == "once":
            if args.dry_run:
                return _dry_run(config)
            return _asyncio_run(_once(config, signals, notify=not args.no_notify))
        retry_base_s, problem = _retry_base_s()
        if problem is not None:
            _report(args, "config_error", problem, variable=RETRY_BASE_ENV, error=problem)
            return EXIT_USAGE
        return _asyncio_run(
            _run(config, config_path, signals, watch=not args.no_watch, retry_base_s=retry_base_s)
        )
    except StartupError as exc:
        _report(args, "startup_failed", str(exc), error=str(exc), exit_code=exc.exit_code)
        return exc.exit_code


def _check(config: Config, config_path: Path, args: argparse.Namespace) -> int:
    from secretsync.source.region import resolve_region  # noqa: PLC0415

    if resolve_region(config.aws.region) is None:
        missing = "no AWS region: set aws.region, AWS_REGION or a region in the AWS config file"
        _report(args, "no_region", f"warning: {missing}", level="warning", problem=missing)
    for name, target in sorted(config.notify.items()):
        # a bare `process` match can reach a JVM that has no SIGHUP handler (or has not
        # installed it yet): such a JVM exits, status 129
        if target.kind == "signal" and target.signal_name == "SIGHUP" and target.pidfile is None:
            warning = (
                f"notify.{name} sends SIGHUP to every process matching its `process` alone: a "
                "JVM without a SIGHUP handler, or one still starting, exits on it; add a "
                "`pidfile` the app writes once its handler is installed, or let the app read "
                "rotated credentials itself (secretsync-kafka) and send nothing, or restart it "
                "with SIGTERM and a `splay` (docs/java.md)"
            )
            _report(
                args, "sighup_bare_process", f"warning: {warning}", level="warning", problem=warning
            )
    ids = len(config.secret_ids)
    summary = f"{len(config.outputs)} outputs, {ids} secrets"
    if args.online:
        return _check_online(config, config_path, args, summary)
    print(f"{config_path}: ok ({summary})")
    return EXIT_OK


def _check_online(config: Config, config_path: Path, args: argparse.Namespace, summary: str) -> int:
    """``check --online``: read-only calls to AWS (see :mod:`secretsync.runtime.check`)."""
    from secretsync import logs  # noqa: PLC0415
    from secretsync.runtime.check import PreflightError, check_online  # noqa: PLC0415
    from secretsync.source.region import resolve_region  # noqa: PLC0415

    # anything logged on the way (the SDK, the redactor) goes to stderr, never stdout
    logs.configure(args.log_level, "json" if _json_errors(args) else "console")
    try:
        report = _asyncio_run(check_online(config, region=resolve_region(config.aws.region)))
    except PreflightError as exc:
        _report(args, "check_failed", f"cannot check online: {exc}", error=str(exc))
        return EXIT_USAGE
    for problem in report.problems:
        _report(
            args,
            "check_problem",
            f"online: {problem}",
            where=problem.where,
            problem=problem.problem,
        )
    if not report.ok:
        count = len(report.problems)
        text = f"{config_path}: {count} problem{'s' if count != 1 else ''} found online"
        _report(args, "check_failed", text, config=str(config_path), problems=count)
        return EXIT_FAILURE
    asked = ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
    asked += [report.push] if report.push else []
    regions = ", ".join(report.regions)
    print(f"{config_path}: ok ({summary}; online in {regions}: {', '.join(asked)})")
    return EXIT_OK


def _config_if_readable(config_path: Path) -> Config | None:
    """The config, or None when it is missing or broken: the health check must not fail
    for that (it falls back to the default address)."""
    from secretsync.config.model import ConfigError, load_config  # noqa: PLC0415

    try:
        return load_config(config_path)
    except ConfigError:
        return None


def _client_options(args: argparse.Namespace, config: Config | None) -> ClientOptions:
    """TLS trust, client certificate and credentials for ``health`` and ``status``.

    Raises OSError when the password file cannot be read.
    """
    import getpass  # noqa: PLC0415

    from secretsync.serve.client import ClientOptions  # noqa: PLC0415

    tls = config.metrics.web_config.tls_server_config if config is not None else None
    user = args.user or os.environ.get("SECRETSYNC_USER") or None
    password = os.environ.get("SECRETSYNC_PASSWORD")
    if user is not None and password is None:
        if args.password_file:
            with open(args.password_file, encoding="utf-8") as f:
                password = f.readline().rstrip("\r\n")
        elif sys.stdin.isatty():
            password = getpass.getpass(f"password for {user}: ")
    return ClientOptions(
        cafile=args.cacert,
        pinned=str(tls.cert_file) if tls is not None else None,
        certfile=args.cert or os.environ.get("SECRETSYNC_CLIENT_CERT") or None,
        keyfile=args.key or os.environ.get("SECRETSYNC_CLIENT_KEY") or None,
        user=user,
        password=password,
    )


def _https(config: Config | None) -> bool:
    return config is not None and config.metrics.web_config.tls_server_config is not None


def _health(
    url: str | None, config_path: Path, config: Config | None, options: ClientOptions
) -> int:
    from secretsync.serve.client import check_health, health_url  # noqa: PLC0415

    if url is None:
        if config is None:  # a missing or broken config: the default address
            url = health_url(None)
        elif config.metrics.listen is None:
            print(
                f"secretsync: metrics are disabled in {config_path} (metrics.listen: null); "
                "give --url to check another address",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        else:
            url = health_url(config.metrics.listen, https=_https(config))
    ok, message = check_health(url, timeout_s=3.0, options=options)
    print(message, file=sys.stdout if ok else sys.stderr)
    return EXIT_OK if ok else EXIT_FAILURE


def _status(
    url: str | None, config: Config | None, options: ClientOptions, *, as_json: bool
) -> int:
    import json  # noqa: PLC0415

    from secretsync.serve.client import fetch_json, status_url  # noqa: PLC0415
    from secretsync.serve.status import format_table, healthy  # noqa: PLC0415

    if url is None:
        listen = config.metrics.listen if config is not None else None
        url = status_url(listen, https=_https(config))
    document, problem = fetch_json(url, options=options)
    if document is None:
        print(f"secretsync: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    print(json.dumps(document, indent=2) if as_json else format_table(document))
    return EXIT_OK if healthy(document) else EXIT_FAILURE


async def _once(config: Config, signals: SignalCapture, *, notify: bool) -> int:
    from secretsync.runtime.once import run_once  # noqa: PLC0415

    return await run_once(config, signals, notify=notify)


def _dry_run(config: Config) -> int:
    from secretsync.runtime.once import dry_run  # noqa: PLC0415

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
            # a value from the config is no secret; anything a secret gave is masked
            value = item.shown.get(key)
            print(f"  {_one_line(key)}={'********' if value is None else _one_line(value)}")
    return EXIT_FAILURE if failed else EXIT_OK


def _one_line(text: str) -> str:
    """``text`` on one line: backslashes and unprintable characters as Python escapes."""
    return "".join(c if c.isprintable() and c != "\\" else ascii(c)[1:-1] for c in text)


def _retry_base_s() -> tuple[float, str | None]:
    """``SECRETSYNC_RETRY_BASE`` in seconds (default 1 s), or a problem naming the variable
    and the allowed range when it is not a duration within it."""
    from secretsync import backoff  # noqa: PLC0415
    from secretsync.config.fields import parse_duration  # noqa: PLC0415

    raw = os.environ.get(RETRY_BASE_ENV, "").strip()
    if not raw:
        return backoff.BASE_S, None
    try:
        value = parse_duration(raw)
    except ValueError:
        value = -1.0
    if not RETRY_BASE_MIN_S <= value <= RETRY_BASE_MAX_S:
        return backoff.BASE_S, (
            f"{RETRY_BASE_ENV}={raw[:40]!r} is not allowed; "
            f"allowed: a duration from 10ms to 60s (such as 100ms, 1s, 5s)"
        )
    return value, None


async def _run(
    config: Config, config_path: Path, signals: SignalCapture, *, watch: bool, retry_base_s: float
) -> int:
    from secretsync.runtime.run import Runtime  # noqa: PLC0415
    from secretsync.runtime.sdnotify import SdNotifier  # noqa: PLC0415

    sd = SdNotifier.from_environ()  # no-op unless started by systemd with Type=notify
    runtime = Runtime(config_path, config, signals, watch=watch, sd=sd, retry_base_s=retry_base_s)
    return await runtime.run()
