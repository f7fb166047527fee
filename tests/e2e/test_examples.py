"""examples/java/ReloadingApp.java, run by a real JDK against files a real daemon writes.

And the behaviour the example exists for: a JVM without a handler exits on
SIGHUP (status 129) just as on SIGTERM (143), running its shutdown hooks.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.configs import example_config, write_yaml
from tests.support.daemon import Daemon
from tests.support.javaapp import JavaApp, JavaApps, require_jdk
from tests.support.motoserver import Moto
from tests.support.paths import REPO
from tests.support.seeds import CANARY_PASSWORD, KAFKA_ID, kafka_secret
from tests.support.wait import wait_until

RELOADING_APP = REPO / "examples" / "java" / "ReloadingApp.java"

# JVM start-up plus compiling the source file: about a second alone, much more under load
JVM_START_S = 90

NO_HANDLER_APP = """
public class NoHandler {
    public static void main(String[] args) throws Exception {
        Runtime.getRuntime().addShutdownHook(
                new Thread(() -> System.out.println("shutdown hook ran")));
        System.out.println("ready");
        Thread.sleep(600_000);
    }
}
"""


STATIC = {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}


def assert_prints_no_value(app: JavaApp, values: dict[str, str]) -> None:
    """No value of ``values`` in the app's stdout or stderr; a failure names keys, not values."""
    output = app.stdout() + app.stderr()
    assert [key for key, value in values.items() if value in output] == []


@pytest.fixture
def java_apps(tmp_path: Path) -> Iterator[JavaApps]:
    require_jdk()
    apps = JavaApps(tmp_path)
    try:
        yield apps
    finally:
        apps.close_all()


def test_reloading_app_reloads_on_the_daemons_sighup_keeps_running_and_prints_no_value(
    moto: Moto, tmp_path: Path, start_daemon: Any, java_apps: JavaApps
) -> None:
    moto.create(KAFKA_ID, kafka_secret())
    props = tmp_path / "out" / "client.properties"
    pidfile = tmp_path / "app.pid"
    data = example_config(
        tmp_path / "out", moto.url, poll={"interval": "200ms", "jitter": 0}, settle=0
    )
    data["outputs"] = [
        {
            "path": str(props),
            # every key of the secret: the rotation below adds one, which the app must see
            "secrets": [{"id": KAFKA_ID}],
            "static": STATIC,
            "notify": ["kafka-app"],
        }
    ]
    # the guarded form: the pidfile's pid, only if it is this example's JVM
    data["notify"] = {
        "kafka-app": {
            "signal": "SIGHUP",
            "pidfile": str(pidfile),
            "process": r"java .*ReloadingApp\.java",
        }
    }
    daemon: Daemon = start_daemon(write_yaml(tmp_path / "sync.yaml", data))
    # the first write is told before the app runs: skipped, so no start-up SIGHUP can come later
    wait_until(
        lambda: daemon.has_event("notify_skipped", target="kafka-app"), 30, "the start-up skip"
    )

    rotated = {**kafka_secret(password="ROTATED-pw-5e61d0"), "client.dns.lookup": "use_all_dns_ips"}
    file_values = {
        **{f"old {k}": v for k, v in kafka_secret().items()},
        **rotated,
        **STATIC,
        "old password": CANARY_PASSWORD,
        "new password": "ROTATED-pw-5e61d0",
        "username": "CANARYKEY1",
    }
    app = java_apps(RELOADING_APP, "--pidfile", str(pidfile), str(props))
    app.wait_for_line("ready pid=", JVM_START_S)
    assert_prints_no_value(app, file_values)
    assert app.lines()[0] == (
        "loaded keys=[bootstrap.servers, sasl.jaas.config, sasl.mechanism, security.protocol]"
    )
    assert pidfile.read_text().strip() == str(app.pid)

    moto.rotate(KAFKA_ID, rotated)
    wait_until(lambda: "client.dns.lookup" in props.read_text(), 30, "the rotated file")
    wait_until(
        lambda: daemon.has_event("notify_sent", target="kafka-app", outcome="ok"),
        30,
        "the daemon's SIGHUP",
    )
    reloaded = app.wait_for_line("reloaded #1 ", JVM_START_S)
    assert_prints_no_value(app, file_values)
    # the new key proves the app read the file as it was after the rotation
    assert reloaded == (
        "reloaded #1 keys=[bootstrap.servers, client.dns.lookup, sasl.jaas.config,"
        " sasl.mechanism, security.protocol]"
    )
    assert app.proc.poll() is None, "the JVM exited on SIGHUP"
    assert next(e for e in daemon.events() if e.get("event") == "notify_sent")["pid"] == app.pid

    assert app.signal_and_wait(signal.SIGTERM) == 0
    assert app.lines()[-1] == "stopped"
    assert app.stderr() == ""
    assert not pidfile.exists()
    assert_prints_no_value(app, file_values)
    assert daemon.proc.poll() is None


def test_reloading_app_keeps_its_clients_when_a_reload_fails(
    tmp_path: Path, java_apps: JavaApps
) -> None:
    props = tmp_path / "client.properties"
    props.write_text("a=secret-a\nb=secret-b\n")
    app = java_apps(RELOADING_APP, str(props))
    app.wait_for_line("ready pid=", JVM_START_S)

    props.unlink()
    app.proc.send_signal(signal.SIGHUP)
    wait_until(
        lambda: "reload failed: java.nio.file.NoSuchFileException" in app.stderr(),
        JVM_START_S,
        "the failed reload",
    )
    assert app.proc.poll() is None

    props.write_text("a=secret-a2\nc=secret-c\n")
    app.proc.send_signal(signal.SIGHUP)
    assert app.wait_for_line("reloaded #1 ", JVM_START_S) == "reloaded #1 keys=[a, c]"
    assert app.signal_and_wait(signal.SIGINT) == 0
    assert_prints_no_value(
        app, {"a": "secret-a", "b": "secret-b", "a2": "secret-a2", "c": "secret-c"}
    )


def test_reloading_app_refuses_to_run_when_sighup_is_ignored(
    tmp_path: Path, java_apps: JavaApps
) -> None:
    """Started under nohup, a JVM cannot handle SIGHUP; the example says so and exits 2."""
    props = tmp_path / "client.properties"
    props.write_text("a=1\n")
    app = java_apps(RELOADING_APP, str(props), ignore_sighup=True)
    assert app.proc.wait(timeout=JVM_START_S) == 2
    assert "SIGHUP is ignored in this process" in app.stderr()
    assert "ready" not in app.stdout()


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGHUP, 129), (signal.SIGTERM, 143)])
def test_a_jvm_without_a_handler_runs_its_shutdown_hooks_and_exits(
    tmp_path: Path, java_apps: JavaApps, sig: signal.Signals, status: int
) -> None:
    """Negative control: why a plain SIGHUP target is a restart (or an outage) for such an app."""
    source = tmp_path / "NoHandler.java"
    source.write_text(NO_HANDLER_APP)
    app = java_apps(source)
    app.wait_for_line("ready", JVM_START_S)
    assert app.signal_and_wait(sig) == status  # the JVM's own exit(128 + signal)
    assert app.lines() == ["ready", "shutdown hook ran"]
