"""The deployment artifacts agree with the daemon: systemd unit, Dockerfile, EKS, ECS, IAM.

Real tools where they exist: ``systemd-analyze verify`` and ``security
--offline=true`` on the unit, ``hadolint`` on the Dockerfiles. The manifests are
loaded and checked against sync.yaml.example and the server contract
(``/metrics /healthz /readyz`` on ``metrics.listen``, default port 9464).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from secretsync.config.model import Config, load_config, parse_config
from tests.support.configs import write_yaml
from tests.support.daemon import run_cli
from tests.support.dockerfile import install_dirs
from tests.support.kustomize import (
    SAMPLE_DEPLOYMENT,
    by_kind,
    named_yaml_blocks,
    render,
    validate,
)
from tests.support.lockfile import parse_lock, project_dependencies, runtime_closure
from tests.support.paths import REPO
from tests.support.require import require

PKG = REPO / "packaging"
UNIT = PKG / "systemd" / "secretsync.service"
APP_DROP_IN = PKG / "systemd" / "kafka-app.service.d" / "secretsync.conf"
LOCK = REPO / "requirements.lock"
K8S = PKG / "kubernetes"
EXAMPLE = yaml.safe_load((REPO / "sync.yaml.example").read_text())
EXAMPLE_OUTPUTS = [out["path"] for out in EXAMPLE["outputs"]]
EXAMPLE_SECRETS = sorted({s["id"] for out in EXAMPLE["outputs"] for s in out["secrets"]})
METRICS_PORT = 9464


def tool(name: str) -> str:
    """Path of a CLI tool (PATH or this venv); skipped if absent, a failure in CI."""
    return require(name, fix=".ci/run must install it")


def output_dirs(config: Config) -> set[str]:
    return {str(PurePosixPath(out.path).parent) for out in config.outputs}


# -- systemd ------------------------------------------------------------------------------


def unit_entries(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment; keys may repeat, as systemd allows."""
    section, entries = "", []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def unit_value(key: str, section: str = "Service") -> list[str]:
    return [v for s, k, v in unit_entries(UNIT.read_text()) if s == section and k == key]


@pytest.fixture
def unit_for_test(tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at this venv's secretsync (an existing binary)."""
    binary = Path(sys.executable).parent / "secretsync"
    assert binary.exists()
    text = UNIT.read_text().replace("/opt/secretsync/bin/secretsync", str(binary))
    assert str(binary) in text
    path = tmp_path / "secretsync.service"
    path.write_text(text)
    return path


def test_systemd_analyze_verify_prints_nothing(unit_for_test: Path) -> None:
    analyze = tool("systemd-analyze")
    result = subprocess.run(
        [analyze, "verify", str(unit_for_test)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


def test_systemd_security_exposure_is_at_most_2(unit_for_test: Path) -> None:
    analyze = tool("systemd-analyze")
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(unit_for_test)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    score = float(match.group(1))
    assert score <= 2.0, f"exposure {score} > 2.0:\n{result.stdout}"


def test_unit_is_notify_with_watchdog_reload_restart_and_a_dedicated_user() -> None:
    assert unit_value("Type") == ["notify"]
    assert unit_value("NotifyAccess") == ["main"]
    assert unit_value("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert unit_value("Restart") == ["on-failure"]
    (watchdog,) = unit_value("WatchdogSec")
    assert re.fullmatch(r"\d+s", watchdog) and int(watchdog[:-1]) >= 10
    (user,) = unit_value("User")
    assert user == "secretsync"
    (exec_start,) = unit_value("ExecStart")
    assert exec_start.split()[:2] == ["/opt/secretsync/bin/secretsync", "run"]
    assert "/etc/secretsync/sync.yaml" in exec_start
    # the example's output directory is writable despite ProtectSystem=strict
    assert unit_value("ProtectSystem") == ["strict"]
    writable = {p.lstrip("-") for v in unit_value("ReadWritePaths") for p in v.split()}
    example_dirs = {str(PurePosixPath(p).parent) for p in EXAMPLE_OUTPUTS}
    assert example_dirs <= writable
    # no capability at all by default (CAP_KILL is the documented opt-in)
    assert unit_value("CapabilityBoundingSet") == [""]
    assert unit_value("AmbientCapabilities") == [""]


def test_systemd_readme_documents_the_knobs_and_the_install() -> None:
    text = (PKG / "systemd" / "README.md").read_text()
    for needle in (
        "ReadWritePaths=",
        "CAP_KILL",
        "/opt/secretsync",
        "/etc/secretsync/sync.yaml",
        "journalctl -u secretsync -o json",
        "systemctl reload secretsync",
    ):
        assert needle in text, needle


def drop_in_units(text: str) -> dict[str, set[str]]:
    """[Unit] dependency directives of a drop-in: key -> the unit names listed."""
    deps: dict[str, set[str]] = {}
    for section, key, value in unit_entries(text):
        if section == "Unit":
            deps.setdefault(key, set()).update(value.split())
    return deps


def test_app_drop_in_requires_secretsync_and_starts_after_it() -> None:
    # Requires= + After=: the app's start waits for secretsync's READY=1 (first
    # complete sync) and fails if secretsync's start fails. Wants= would only
    # order (the app would start without its files); BindsTo= would also stop
    # the app whenever secretsync stops (README explains the choice).
    deps = drop_in_units(APP_DROP_IN.read_text())
    assert "secretsync.service" in deps.get("Requires", set()), deps
    assert "secretsync.service" in deps.get("After", set()), deps
    assert "secretsync.service" not in deps.get("Wants", set()), "Wants= does not gate the start"
    assert "secretsync.service" not in deps.get("BindsTo", set()), "see README: Requires="
    assert "secretsync.service" not in deps.get("Before", set())
    # what After= waits for: READY=1, sent after the first complete sync
    assert unit_value("Type") == ["notify"]


def test_systemd_readme_ships_the_drop_in_and_explains_requires() -> None:
    text = (PKG / "systemd" / "README.md").read_text()
    assert "(kafka-app.service.d/secretsync.conf)" in text, "link the shipped drop-in"
    assert "Requires=secretsync.service" in text
    assert "Wants=secretsync.service\n" not in text, "the old, non-gating drop-in"
    for needle in ("Not `Wants=`", "Not `BindsTo=`", "systemctl reload secretsync"):
        assert needle in text, needle


def verify_app_with_drop_in(unit_dir: Path) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify on a minimal kafka-app.service with the shipped drop-in,
    in ``unit_dir`` (verify looks for drop-ins and dependencies next to the unit)."""
    app = unit_dir / "kafka-app.service"
    sleep = shutil.which("sleep")
    assert sleep is not None
    app.write_text(
        "[Unit]\nDescription=stand-in for the Kafka app\n\n"
        f"[Service]\nExecStart={sleep} infinity\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )
    drop_in_dir = unit_dir / "kafka-app.service.d"
    drop_in_dir.mkdir(exist_ok=True)
    shutil.copy(APP_DROP_IN, drop_in_dir / "secretsync.conf")
    analyze = tool("systemd-analyze")
    targets = [str(app)] + [str(u) for u in unit_dir.glob("secretsync.service")]
    return subprocess.run([analyze, "verify", *targets], capture_output=True, text=True, timeout=60)


def test_app_drop_in_passes_systemd_analyze_verify(unit_for_test: Path) -> None:
    result = verify_app_with_drop_in(unit_for_test.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


def test_verify_reads_the_drop_in_and_resolves_its_requirement(tmp_path: Path) -> None:
    # Without secretsync.service next to it, verify must complain about the
    # Requires= of the drop-in: proof that the check above saw the drop-in.
    result = verify_app_with_drop_in(tmp_path)
    assert result.returncode != 0
    assert "secretsync.service not found" in result.stderr, result.stderr


# -- Dockerfile -------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += " " + line.rstrip("\\").strip() if pending else line.rstrip("\\").strip()
        if line.endswith("\\"):
            continue
        word, _, rest = pending.partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


@pytest.mark.parametrize("path", [REPO / "Dockerfile", PKG / "ecs" / "Dockerfile"])
def test_hadolint_is_clean(path: Path) -> None:
    hadolint = tool("hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_dockerfile_contract() -> None:
    ins = dockerfile_instructions(REPO / "Dockerfile")
    args = {rest.partition("=")[0]: rest.partition("=")[2] for word, rest in ins if word == "ARG"}
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), "pin the base by version"
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS build"), "multi-stage: build, runtime"
    runtime = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM") :]

    def last(word: str) -> str:
        return [rest for w, rest in runtime if w == word][-1]

    assert re.fullmatch(r"\d+:\d+", last("USER")) and not last("USER").startswith("0:")
    assert json.loads(last("ENTRYPOINT")) == ["secretsync"]
    assert json.loads(last("CMD")) == ["run"]
    assert last("EXPOSE") == str(METRICS_PORT)
    healthcheck = last("HEALTHCHECK")
    assert json.loads(healthcheck.partition("CMD ")[2]) == ["secretsync", "health"]
    labels = " ".join(rest for w, rest in runtime if w == "LABEL")
    for key in ("title", "description", "version", "revision", "licenses", "source"):
        assert f"org.opencontainers.image.{key}=" in labels
    env = " ".join(rest for w, rest in runtime if w == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "read-only root: no bytecode written at run time"
    assert "COPY --from=build /opt/secretsync /opt/secretsync" in [
        f"COPY {rest}" for w, rest in runtime if w == "COPY"
    ]


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (REPO / ".dockerignore").read_text().split()
    assert lines[lines.index("*") :][0] == "*", "everything is excluded first"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {
        "requirements.lock",
        "pyproject.toml",
        "README.md",
        "CHANGELOG.md",
        "LICENSE",
        "sync.yaml.example",
        "daemon",
    }
    copied = {
        part.rstrip("/").removeprefix("./")
        for word, rest in dockerfile_instructions(REPO / "Dockerfile")
        if word == "COPY" and not rest.startswith("--from")
        for part in rest.split()[:-1]
    }
    assert copied <= allowed


def runtime_stage(path: Path) -> list[tuple[str, str]]:
    ins = dockerfile_instructions(path)
    return ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM") :]


def build_stage(path: Path) -> list[tuple[str, str]]:
    ins = dockerfile_instructions(path)
    froms = [i for i, (w, _) in enumerate(ins) if w == "FROM"]
    return ins[froms[0] : froms[1]]


def test_output_dir_is_owned_by_the_user_before_it_is_declared_a_volume() -> None:
    # Docker (and ECS, for a task volume without host.sourcePath) initialises a new
    # volume from the image's directory at the mount point, owner and mode
    # included, but only for a path the image declares as VOLUME. Without it, the
    # volume is root:root 0755 and uid 10001 cannot write its files.
    runtime = runtime_stage(REPO / "Dockerfile")
    volumes = [(i, json.loads(rest)) for i, (w, rest) in enumerate(runtime) if w == "VOLUME"]
    assert [paths for _, paths in volumes] == [["/etc/kafka"]], "one VOLUME, JSON form"
    ((volume_at, _),) = volumes
    example_dirs = {str(PurePosixPath(p).parent) for p in EXAMPLE_OUTPUTS}
    assert example_dirs == {"/etc/kafka"}

    made = {
        d.path: (i, d)
        for i, (w, rest) in enumerate(runtime)
        if w == "RUN"
        for d in install_dirs(rest)
    }
    assert "/etc/kafka" in made, "create the directory with install -d -o -g -m"
    made_at, directory = made["/etc/kafka"]
    assert made_at < volume_at, "the directory must exist, owned, before VOLUME"
    user = [rest for w, rest in runtime if w == "USER"][-1]
    uid, gid = user.split(":")
    assert (directory.owner, directory.group) == (uid, gid) == ("10001", "10001")
    mode = int(directory.mode or "0755", 8)
    assert mode & 0o700 == 0o700, "the owner writes (atomic renames in the directory)"
    assert mode & 0o007 == 0, "nobody else gets in"
    # build steps after VOLUME must not put anything there (discarded or unowned)
    for word, rest in runtime[volume_at + 1 :]:
        if word in {"COPY", "ADD"}:
            assert not rest.split()[-1].startswith("/etc/kafka"), rest
        if word == "RUN":
            assert "/etc/kafka" not in rest, rest


def test_ecs_image_inherits_the_volume_and_adds_nothing_to_it() -> None:
    ins = dockerfile_instructions(PKG / "ecs" / "Dockerfile")
    assert [w for w, _ in ins if w == "VOLUME"] == [], "the base image declares it"
    for word, rest in ins:
        if word in {"COPY", "ADD", "RUN"}:
            assert "/etc/kafka" not in rest, rest


def test_lock_pins_every_runtime_dependency_with_hashes() -> None:
    pins, other = parse_lock(LOCK.read_text())
    assert other == [], "only name==version requirements: no index, find-links or ranges"
    by_name = {pin.name: pin for pin in pins}
    assert len(by_name) == len(pins), "each package once"
    for pin in pins:
        assert pin.hashes, f"{pin.name}: no --hash"
        assert re.fullmatch(r"[0-9][0-9A-Za-z.+!]*", pin.version), pin.text
        assert ";" not in pin.text, f"{pin.name}: the image's platforms need no markers"
    # every direct dependency, at a version pyproject allows
    direct = project_dependencies(REPO / "pyproject.toml")
    for req in direct:
        locked = by_name.get(req.name.lower().replace("_", "-"))
        assert locked is not None, f"{req.name} (pyproject) is not locked"
        assert req.specifier.contains(locked.version, prereleases=True), (req, locked.version)
    # and everything they need, transitively (extras followed, image markers)
    reached, unexpanded = runtime_closure(direct, by_name)
    missing = reached - set(by_name)
    assert not missing, f"not in requirements.lock (run `make lock`): {sorted(missing)}"
    if not unexpanded:  # this venv has the locked versions: the lock has nothing extra
        assert set(by_name) == reached, sorted(set(by_name) - reached)
    # nothing unexplained: each pin is needed by pyproject or by another pin
    for pin in pins:
        assert pin.via, f"{pin.name}: no '# via'"
        for parent in pin.via:
            name = parent.split()[0]
            assert name == "secretsync-sidecar" or name in by_name, (pin.name, parent)


def test_dockerfile_installs_the_lock_with_hashes_before_the_source() -> None:
    build = build_stage(REPO / "Dockerfile")
    copies = [i for i, (w, rest) in enumerate(build) if w == "COPY"]
    (lock_at,) = [i for i in copies if build[i][1].split()[:-1] == ["requirements.lock"]]
    (source_at,) = [i for i in copies if build[i][1].split()[0] == "daemon"]
    runs = [(i, rest) for i, (w, rest) in enumerate(build) if w == "RUN"]
    lock_installs = [(i, rest) for i, rest in runs if "-r requirements.lock" in rest]
    assert len(lock_installs) == 1
    install_at, install = lock_installs[0]
    # the dependency layer sits between the lock and the source: cached across
    # source changes, rebuilt when the lock changes
    assert lock_at < install_at < source_at
    for flag in ("--require-hashes", "--no-deps", "--only-binary=:all:"):
        assert flag in install, flag
    (project,) = [rest for i, rest in runs if i > source_at and "secretsync_sidecar-" in rest]
    assert "--no-deps" in project and "--no-index" in project, "resolve nothing twice"
    assert "pip wheel --no-deps" in project
    assert re.search(r"pip --python \S+ check", project), "a missing dependency fails the build"


# -- Kubernetes -----------------------------------------------------------------------------


def k8s_objects() -> dict[str, dict[str, Any]]:
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted((PKG / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and "kind" in doc:
                objects[doc["kind"]] = doc
    return objects


def pod_parts() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(pod spec, secretsync sidecar, app container)."""
    spec = k8s_objects()["Deployment"]["spec"]["template"]["spec"]
    (sidecar,) = [c for c in spec["initContainers"] if c["name"] == "secretsync"]
    (app,) = spec["containers"]
    return spec, sidecar, app


def k8s_config() -> Config:
    return parse_config(yaml.safe_load(k8s_objects()["ConfigMap"]["data"]["sync.yaml"]))


def mounts(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container.get("volumeMounts", [])}


def test_kustomization_lists_the_manifests() -> None:
    kust = yaml.safe_load((PKG / "kubernetes" / "kustomization.yaml").read_text())
    for name in kust["resources"]:
        assert (PKG / "kubernetes" / name).exists()
    assert {"serviceaccount.yaml", "configmap.yaml", "deployment.yaml"} <= set(kust["resources"])


def test_k8s_sync_yaml_is_valid_and_writes_where_the_example_does() -> None:
    config = k8s_config()
    assert [str(out.path) for out in config.outputs] == EXAMPLE_OUTPUTS
    assert sorted(config.secret_ids) == EXAMPLE_SECRETS
    assert config.metrics.listen is not None and config.metrics.port == METRICS_PORT


def test_containers_listen_on_every_interface_explicitly_and_a_host_on_loopback() -> None:
    # the default is loopback (EC2/systemd: the VPC must not read /status); the kubelet
    # and Prometheus reach a pod or task on its IP, so the manifests say 0.0.0.0
    for text in (
        k8s_objects()["ConfigMap"]["data"]["sync.yaml"],
        (PKG / "ecs" / "sync.yaml").read_text(),
    ):
        assert yaml.safe_load(text)["metrics"]["listen"] == f"0.0.0.0:{METRICS_PORT}"
    assert EXAMPLE["metrics"]["listen"] == f"127.0.0.1:{METRICS_PORT}"  # systemd installs it
    assert parse_config(
        {"outputs": [{"path": "/o/a", "secrets": [{"id": "s"}]}]}
    ).metrics.listen == (f"127.0.0.1:{METRICS_PORT}")


def test_sidecar_is_native_and_the_pod_shares_processes() -> None:
    spec, sidecar, _app = pod_parts()
    assert sidecar["restartPolicy"] == "Always"
    assert spec["shareProcessNamespace"] is True
    assert sidecar["args"][0] == "run"


def test_outputs_live_on_a_memory_emptydir_shared_with_the_app() -> None:
    spec, sidecar, app = pod_parts()
    volumes = {v["name"]: v for v in spec["volumes"]}
    for directory in output_dirs(k8s_config()):
        side, main = mounts(sidecar).get(directory), mounts(app).get(directory)
        assert side and main, f"{directory} must be mounted in both containers"
        assert side["name"] == main["name"]
        assert volumes[side["name"]]["emptyDir"]["medium"] == "Memory"
        assert not side.get("readOnly") and main.get("readOnly") is True
    # the ConfigMap is mounted where the CLI looks by default
    config_mount = mounts(sidecar)["/etc/secretsync"]
    assert config_mount["readOnly"] is True
    assert (
        volumes[config_mount["name"]]["configMap"]["name"]
        == (k8s_objects()["ConfigMap"]["metadata"]["name"])
    )


def test_signal_target_is_reachable_in_the_pod() -> None:
    spec, sidecar, app = pod_parts()
    for target in k8s_config().notify.values():
        if target.kind != "signal":
            continue
        assert spec["shareProcessNamespace"] is True
        if target.pidfile is not None:
            directory = str(target.pidfile.parent)
            assert directory in mounts(sidecar) and directory in mounts(app)
    # same uid: SIGHUP needs no capability (a non-root container can't use an added one)
    pod_uid = spec["securityContext"]["runAsUser"]
    for container in (sidecar, app):
        assert container["securityContext"].get("runAsUser", pod_uid) == pod_uid


def test_probes_and_ports_match_the_metrics_server() -> None:
    _spec, sidecar, _app = pod_parts()
    ports = {p["name"]: p["containerPort"] for p in sidecar["ports"]}
    assert ports["metrics"] == METRICS_PORT

    def probe(kind: str) -> tuple[str, int]:
        get = sidecar[kind]["httpGet"]
        port = get["port"]
        return get["path"], ports[port] if isinstance(port, str) else port

    assert probe("startupProbe") == ("/readyz", METRICS_PORT)  # the app starts after it
    assert probe("readinessProbe") == ("/readyz", METRICS_PORT)
    assert probe("livenessProbe") == ("/healthz", METRICS_PORT)
    # a native sidecar's readiness is the pod's: it must survive an AWS outage
    assert k8s_config().metrics.readiness == "synced"
    annotations = k8s_objects()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"
    endpoint = k8s_objects()["PodMonitor"]["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"


def test_sidecar_security_context_and_resources() -> None:
    spec, sidecar, _app = pod_parts()
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    ctx = sidecar["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert "add" not in ctx["capabilities"]
    res = sidecar["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(res[kind])
    assert not sidecar["image"].endswith(":latest") and ":" in sidecar["image"]


def test_service_account_carries_the_irsa_role() -> None:
    objects = k8s_objects()
    sa = objects["ServiceAccount"]
    assert re.fullmatch(
        r"arn:aws:iam::\d{12}:role/[\w+=,.@-]+",
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
    )
    spec, _sidecar, _app = pod_parts()
    assert spec["serviceAccountName"] == sa["metadata"]["name"]
    trust = json.loads((PKG / "iam" / "trust-eks-irsa.json").read_text())
    (sub,) = [
        v
        for k, v in trust["Statement"][0]["Condition"]["StringEquals"].items()
        if k.endswith(":sub")
    ]
    assert sub.endswith(":" + sa["metadata"]["name"])


def trust_subject() -> tuple[str, str]:
    """(namespace, service account) the IRSA trust policy admits."""
    trust = json.loads((PKG / "iam" / "trust-eks-irsa.json").read_text())
    (sub,) = [
        v
        for st in trust["Statement"]
        for k, v in st["Condition"]["StringEquals"].items()
        if k.endswith(":sub")
    ]
    match = re.fullmatch(r"system:serviceaccount:([a-z0-9-]+):([a-z0-9.-]+)", sub)
    assert match, sub
    return match.group(1), match.group(2)


def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return data


def test_namespace_is_the_one_the_irsa_trust_policy_admits() -> None:
    namespace, account = trust_subject()
    assert kustomization()["namespace"] == namespace
    assert k8s_objects()["ServiceAccount"]["metadata"]["name"] == account
    spec, _sidecar, _app = pod_parts()
    assert spec["serviceAccountName"] == account
    # no manifest pins another namespace that the kustomization would override
    for kind, obj in k8s_objects().items():
        if kind != "Kustomization":
            assert obj["metadata"].get("namespace", namespace) == namespace, kind


def test_kustomize_renders_valid_objects_in_that_namespace(tmp_path: Path) -> None:
    objects = render(tool("kubectl"), K8S)
    namespace, account = trust_subject()
    kinds = by_kind(objects)
    assert set(kinds) == {"ServiceAccount", "ConfigMap", "Deployment", "NetworkPolicy"}
    for obj in objects:
        assert obj["metadata"]["namespace"] == namespace, obj["kind"]
    assert kinds["ServiceAccount"]["metadata"]["name"] == account
    assert kinds["Deployment"] == {
        **k8s_objects()["Deployment"],
        "metadata": {**k8s_objects()["Deployment"]["metadata"], "namespace": namespace},
    }
    validate(tool("kubernetes-validate"), objects, tmp_path)


def test_app_gets_no_aws_credentials_from_irsa() -> None:
    spec, sidecar, _app = pod_parts()
    annotations = k8s_objects()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    skipped = set(annotations["eks.amazonaws.com/skip-containers"].split(","))
    everyone = {c["name"] for c in spec["containers"] + spec["initContainers"]}
    assert skipped == everyone - {sidecar["name"]}, "every container but secretsync"


def port_allowed(rule: dict[str, Any], number: int, name: str) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    return any(
        p.get("protocol", "TCP") == "TCP"
        and (p.get("port") in (number, name) or p.get("port") is None)
        for p in ports
    )


def test_network_policy_admits_only_prometheus_to_the_metrics_port() -> None:
    policy = k8s_objects()["NetworkPolicy"]["spec"]
    deployment = k8s_objects()["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = policy["podSelector"]["matchLabels"]
    assert selector.items() <= labels.items(), "the policy selects the pod"
    assert policy["policyTypes"] == ["Ingress"], "egress (STS, Secrets Manager) untouched"

    _spec, sidecar, _app = pod_parts()
    metrics = {p["name"]: p["containerPort"] for p in sidecar["ports"]}["metrics"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": metrics, "protocol": "TCP"}], "by number (EKS VPC CNI)"
    # one peer with both selectors: Prometheus pods IN the monitoring namespace
    (peer,) = rule["from"]
    assert peer["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
    }
    assert peer["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}


def test_network_policy_admits_every_port_of_the_pod() -> None:
    # A policy selecting the pod isolates ALL of its ingress: a container port that
    # no rule admits is unreachable. Adding an app port means adding its rule.
    spec, _sidecar, _app = pod_parts()
    rules = k8s_objects()["NetworkPolicy"]["spec"]["ingress"]
    for container in spec["containers"] + spec["initContainers"]:
        for port in container.get("ports", []):
            assert any(
                port_allowed(rule, port["containerPort"], port.get("name", "")) for rule in rules
            ), f"{container['name']}:{port['containerPort']} is blocked by the NetworkPolicy"


# -- the sidecar component --------------------------------------------------------------


def component_patch() -> dict[str, Any]:
    patch: dict[str, Any] = yaml.safe_load((K8S / "sidecar" / "sidecar.yaml").read_text())
    return patch


def test_component_is_a_kustomize_component_patching_deployments() -> None:
    comp = yaml.safe_load((K8S / "sidecar" / "kustomization.yaml").read_text())
    assert comp["kind"] == "Component"
    assert comp["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    (patch,) = comp["patches"]
    assert patch["target"]["kind"] == "Deployment"
    assert (K8S / "sidecar" / patch["path"]).exists()


def test_component_sidecar_is_the_one_of_the_example_deployment() -> None:
    _spec, sidecar, _app = pod_parts()
    pod = component_patch()["spec"]["template"]["spec"]
    (component_sidecar,) = pod["initContainers"]
    assert component_sidecar == sidecar, "keep sidecar/sidecar.yaml and deployment.yaml in step"
    assert "containers" not in pod, "the app's containers are the team's"


def adopting_kustomization(tmp_path: Path) -> Path:
    """The files packaging/kubernetes/README.md tells a team to write, next to
    SAMPLE_DEPLOYMENT, with the component referenced from this checkout."""
    blocks = named_yaml_blocks((K8S / "README.md").read_text())
    assert {"kustomization.yaml", "secretsync-mount.yaml"} <= set(blocks)
    app = tmp_path / "orders"
    app.mkdir()
    kust = yaml.safe_load(blocks["kustomization.yaml"])
    assert len(kust["components"]) == 1
    kust["components"] = [os.path.relpath(K8S / "sidecar", app)]
    (app / "kustomization.yaml").write_text(yaml.safe_dump(kust))
    (app / "secretsync-mount.yaml").write_text(blocks["secretsync-mount.yaml"])
    (app / "deployment.yaml").write_text(SAMPLE_DEPLOYMENT)
    (app / "sync.yaml").write_text(k8s_objects()["ConfigMap"]["data"]["sync.yaml"])
    return app


def test_component_adds_the_sidecar_to_an_existing_deployment(tmp_path: Path) -> None:
    objects = render(tool("kubectl"), adopting_kustomization(tmp_path))
    kinds = by_kind(objects)
    before = yaml.safe_load(SAMPLE_DEPLOYMENT)["spec"]["template"]
    after = kinds["Deployment"]["spec"]["template"]
    pod, old_pod = after["spec"], before["spec"]
    _spec, example_sidecar, _app = pod_parts()

    # secretsync: a native sidecar, first, so later init containers see the files
    names = [c["name"] for c in pod["initContainers"]]
    assert names == ["secretsync", "migrate"]
    sidecar = pod["initContainers"][0]
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar == example_sidecar
    assert pod["initContainers"][1] == old_pod["initContainers"][0]
    # its volumes, the ConfigMap generated from the team's sync.yaml
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["kafka-config"]["emptyDir"]["medium"] == "Memory"
    config_map = kinds["ConfigMap"]
    assert volumes["secretsync-config"]["configMap"]["name"] == config_map["metadata"]["name"]
    assert parse_config(yaml.safe_load(config_map["data"]["sync.yaml"])) == k8s_config()
    assert volumes["tmp"] == old_pod["volumes"][0]
    assert pod["shareProcessNamespace"] is True
    # the app's containers are untouched but for the read-only mount of /etc/kafka
    orders, shipper = pod["containers"]
    assert shipper == old_pod["containers"][1]
    expected_mount = {"name": "kafka-config", "mountPath": "/etc/kafka", "readOnly": True}
    assert expected_mount in orders["volumeMounts"]
    assert {k: v for k, v in orders.items() if k != "volumeMounts"} == {
        k: v for k, v in old_pod["containers"][0].items() if k != "volumeMounts"
    }
    assert [m for m in orders["volumeMounts"] if m != expected_mount] == (
        old_pod["containers"][0]["volumeMounts"]
    )
    for key in ("serviceAccountName", "securityContext"):
        assert pod[key] == old_pod[key], key
    # IRSA credentials for secretsync only: the first container is skipped, and
    # the team's own annotations are kept
    annotations = after["metadata"]["annotations"]
    assert annotations["eks.amazonaws.com/skip-containers"] == "orders"
    assert before["metadata"]["annotations"].items() <= annotations.items()
    assert after["metadata"]["labels"] == before["metadata"]["labels"]
    validate(tool("kubernetes-validate"), objects, tmp_path)


# -- ECS ----------------------------------------------------------------------------------------


def ecs_task() -> dict[str, Any]:
    task: dict[str, Any] = json.loads((PKG / "ecs" / "task-definition.json").read_text())
    return task


def ecs_containers() -> tuple[dict[str, Any], dict[str, Any]]:
    defs = {c["name"]: c for c in ecs_task()["containerDefinitions"]}
    return defs["secretsync"], defs["app"]


def test_ecs_sync_yaml_matches_the_example_and_the_configmap() -> None:
    config = parse_config(yaml.safe_load((PKG / "ecs" / "sync.yaml").read_text()))
    assert [str(out.path) for out in config.outputs] == EXAMPLE_OUTPUTS
    assert config == k8s_config()
    ins = dockerfile_instructions(PKG / "ecs" / "Dockerfile")
    assert ("COPY", "sync.yaml /etc/secretsync/sync.yaml") in ins


def test_ecs_task_shares_pids_and_the_output_volume() -> None:
    task = ecs_task()
    assert task["pidMode"] == "task"
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/.+", task["taskRoleArn"])
    sidecar, app = ecs_containers()
    volumes = {v["name"] for v in task["volumes"]}
    config = parse_config(yaml.safe_load((PKG / "ecs" / "sync.yaml").read_text()))
    for directory in output_dirs(config):
        side = {m["containerPath"]: m for m in sidecar["mountPoints"]}[directory]
        main = {m["containerPath"]: m for m in app["mountPoints"]}[directory]
        assert side["sourceVolume"] == main["sourceVolume"] and side["sourceVolume"] in volumes
        assert side["readOnly"] is False and main["readOnly"] is True
    assert sidecar["user"] == app["user"], "same uid: SIGHUP needs no capability"
    assert not sidecar["user"].startswith("0")


def test_ecs_app_waits_for_a_healthy_sidecar() -> None:
    sidecar, app = ecs_containers()
    assert {"containerName": "secretsync", "condition": "HEALTHY"} in app["dependsOn"]
    command = sidecar["healthCheck"]["command"]
    assert command[:3] == ["CMD", "secretsync", "health"]
    if "--url" in command:  # readiness: the files exist before the app starts
        url = command[command.index("--url") + 1]
        assert url == f"http://127.0.0.1:{METRICS_PORT}/readyz"
    ecs_sync = parse_config(yaml.safe_load((PKG / "ecs" / "sync.yaml").read_text()))
    assert ecs_sync.metrics.readiness == "synced"  # an outage never makes it unhealthy
    assert {"containerPort": METRICS_PORT, "protocol": "tcp", "name": "metrics"} in sidecar[
        "portMappings"
    ]
    assert sidecar["readonlyRootFilesystem"] is True
    assert sidecar["linuxParameters"]["capabilities"]["drop"] == ["ALL"]
    assert sidecar["command"][0] == "run"
    for container in (sidecar, app):
        log = container["logConfiguration"]
        assert log["logDriver"] == "awslogs"
        assert {"awslogs-group", "awslogs-region", "awslogs-stream-prefix"} <= set(log["options"])


def test_ecs_output_volume_is_initialised_from_the_image() -> None:
    # ECS copies the image's VOLUME directory (owner and mode included) into a
    # task volume whose containerPath is that path, but never into a host
    # directory (host.sourcePath): that one keeps the host's owner.
    task = ecs_task()
    sidecar, app = ecs_containers()
    volumes = {v["name"]: v for v in task["volumes"]}
    config = parse_config(yaml.safe_load((PKG / "ecs" / "sync.yaml").read_text()))
    runtime = runtime_stage(REPO / "Dockerfile")
    declared = {p for w, rest in runtime if w == "VOLUME" for p in json.loads(rest)}
    made = {d.path: d for w, rest in runtime if w == "RUN" for d in install_dirs(rest)}
    for directory in output_dirs(config):
        assert directory in declared, f"{directory}: the image must declare it a VOLUME"
        side = {m["containerPath"]: m for m in sidecar["mountPoints"]}[directory]
        main = {m["containerPath"]: m for m in app["mountPoints"]}[directory]
        assert side["sourceVolume"] == main["sourceVolume"], "one volume, same path in both"
        volume = volumes[side["sourceVolume"]]
        assert "sourcePath" not in volume.get("host", {}), "a host path gets no copy"
        assert set(volume) <= {"name", "host"}, "a task volume, not EFS/FSx/Docker plugin"
        # the app reads the files: the directory's owner is the app's uid
        owner, group = made[directory].owner, made[directory].group
        assert sidecar["user"] == f"{owner}:{group}"
        app_uid, app_gid = app["user"].split(":")
        mode = int(made[directory].mode or "0755", 8)
        assert app_uid == owner or (app_gid == group and mode & 0o050 == 0o050)


def test_ecs_readme_documents_the_volume_rule() -> None:
    text = (PKG / "ecs" / "README.md").read_text()
    for needle in ("VOLUME", "sourcePath", "Fargate", "install -d -o 10001 -g 10001 -m 0750"):
        assert needle in text, needle


# -- IAM --------------------------------------------------------------------------------------


def iam_policy() -> dict[str, Any]:
    policy: dict[str, Any] = json.loads((PKG / "iam" / "secretsync-policy.json").read_text())
    return policy


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_iam_policy_is_least_privilege() -> None:
    policy = iam_policy()
    assert policy["Version"] == "2012-10-17"
    statements = policy["Statement"]
    actions = [a for st in statements for a in as_list(st["Action"])]
    assert all("*" not in a for a in actions), "no wildcard actions"
    assert all(st["Effect"] == "Allow" and "NotAction" not in st for st in statements)
    assert sorted(actions) == [
        "kms:Decrypt",
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetSecretValue",
    ]

    (sm,) = [st for st in statements if "secretsmanager:GetSecretValue" in as_list(st["Action"])]
    arn = re.compile(r"arn:aws:secretsmanager:[a-z0-9-]+:\d{12}:secret:(.+)-\?{6}")
    names = sorted(arn.fullmatch(r).group(1) for r in as_list(sm["Resource"]))  # type: ignore[union-attr]
    assert names == EXAMPLE_SECRETS, "exactly the secrets sync.yaml.example reads"

    (kms,) = [st for st in statements if "kms:Decrypt" in as_list(st["Action"])]
    assert re.fullmatch(r"arn:aws:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}", kms["Resource"])
    via = kms["Condition"]["StringEquals"]["kms:ViaService"]
    region = sm["Resource"][0].split(":")[3]
    assert via == f"secretsmanager.{region}.amazonaws.com"


# -- README ----------------------------------------------------------------------------------


def test_the_platform_guides_link_every_artifact() -> None:
    # README's first screen names the three guides; each guide links the real files
    readme = (REPO / "README.md").read_text()
    first_screen = readme.split("\n## ", 2)[0]
    guides = {"eks.md": "packaging/kubernetes/", "ecs.md": "packaging/ecs/"}
    guides["ec2-systemd.md"] = "packaging/systemd/"
    for guide in guides:
        assert f"(docs/{guide})" in first_screen, guide
    linked: set[str] = set()
    for guide in guides:
        text = (REPO / "docs" / guide).read_text()
        for link in re.findall(r"\]\(\.\./([^)#]+)[^)]*\)", text):
            assert (REPO / link).exists(), f"{guide}: {link}"
            linked.add(link)
    for artifact in (
        "packaging/systemd/secretsync.service",
        "packaging/systemd/README.md",
        "packaging/systemd/kafka-app.service.d/secretsync.conf",
        "packaging/kubernetes/",
        "packaging/kubernetes/README.md",
        "packaging/kubernetes/podmonitor.yaml",
        "packaging/ecs/task-definition.json",
        "packaging/ecs/Dockerfile",
        "packaging/ecs/sync.yaml",
        "packaging/iam/secretsync-policy.json",
        "packaging/iam/trust-eks-irsa.json",
        "packaging/iam/trust-ecs-tasks.json",
    ):
        assert artifact in linked, artifact


def test_readme_cost_model_table_follows_its_formula() -> None:
    """Every row: N × 86,400 / I calls a day; × 30 × $0.05 / 10,000 a month; × 100."""
    text = (REPO / "README.md").read_text()
    section = text.split("### What polling costs", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(
        r"^\| (\d+) \| (\d+)(s|m)[^|]* \| ([\d,]+) \| \$([\d.]+) \| \$([\d.]+) \|$", section, re.M
    )
    assert len(rows) >= 4
    for n, amount, unit, per_day, per_month, fleet in rows:
        interval_s = int(amount) * (60 if unit == "m" else 1)
        calls = int(n) * 86_400 // interval_s
        assert int(per_day.replace(",", "")) == calls
        month = calls * 30 * 0.05 / 10_000
        assert float(per_month) == round(month, 2)
        assert float(fleet) == round(month * 100, 2)


SHIPPED_CONFIGS: dict[str, Callable[[], Config]] = {
    "sync.yaml.example": lambda: load_config(REPO / "sync.yaml.example"),
    "kubernetes": k8s_config,
    "ecs": lambda: parse_config(yaml.safe_load((PKG / "ecs" / "sync.yaml").read_text())),
}


@pytest.mark.parametrize("name", sorted(SHIPPED_CONFIGS))
def test_shipped_configs_never_send_sighup_to_a_jvm_that_may_have_no_handler(name: str) -> None:
    config = SHIPPED_CONFIGS[name]()
    for target_name, target in config.notify.items():
        if target.kind == "signal" and target.signal_name == "SIGHUP":
            # only the pid the app itself wrote once its handler was installed
            assert target.pidfile is not None, f"{name}: notify.{target_name}"
            assert target.process is not None, f"{name}: notify.{target_name} unguarded"


@pytest.mark.parametrize("name", sorted(SHIPPED_CONFIGS))
def test_shipped_configs_let_the_clients_read_rotated_credentials_themselves(name: str) -> None:
    config = SHIPPED_CONFIGS[name]()
    for out in config.outputs:
        assert out.notify == [], f"{name}: {out.path} needs no signal with secretsync-kafka"
        keys = {key for secret in out.secrets for key in (secret.keys or [])}
        if "sasl.jaas.config" in keys:
            assert out.static["sasl.client.callback.handler.class"] == (
                "dev.secretsync.kafka.FileCredentialCallbackHandler"
            )
            assert out.static["secretsync.credentials.file"] == str(out.path)
        if "basic.auth.user.info" in keys:
            assert out.static["basic.auth.credentials.source"] == "SECRETSYNC_FILE"
            assert out.static["secretsync.basic.auth.file"] == str(out.path)


def test_check_has_no_warning_for_the_shipped_configs(tmp_path: Path) -> None:
    cm = yaml.safe_load(k8s_objects()["ConfigMap"]["data"]["sync.yaml"])
    for path in (
        REPO / "sync.yaml.example",
        PKG / "ecs" / "sync.yaml",
        write_yaml(tmp_path / "k8s.yaml", cm),
    ):
        result = run_cli("check", "-c", str(path))
        assert result.returncode == 0, result.stderr
        assert "warning" not in result.stderr, (path, result.stderr)
