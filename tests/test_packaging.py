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
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from secretsync.config import Config, parse_config
from tests.conftest import REPO

PKG = REPO / "packaging"
UNIT = PKG / "systemd" / "secretsync.service"
EXAMPLE = yaml.safe_load((REPO / "sync.yaml.example").read_text())
EXAMPLE_OUTPUTS = [out["path"] for out in EXAMPLE["outputs"]]
EXAMPLE_SECRETS = sorted({s["id"] for out in EXAMPLE["outputs"] for s in out["secrets"]})
METRICS_PORT = 9464
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def tool(name: str) -> str:
    """Path of a CLI tool (PATH or this venv); skipped if absent, a failure in CI."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        if IN_CI:
            pytest.fail(f"{name} is not installed; .ci/run must install it")
        pytest.skip(f"{name} is not installed (CI installs it)")
    return found


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
    assert allowed == {"pyproject.toml", "README.md", "CHANGELOG.md", "sync.yaml.example", "daemon"}
    copied = {
        part.rstrip("/").removeprefix("./")
        for word, rest in dockerfile_instructions(REPO / "Dockerfile")
        if word == "COPY" and not rest.startswith("--from")
        for part in rest.split()[:-1]
    }
    assert copied <= allowed


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


def test_readme_deploying_section_links_every_artifact() -> None:
    text = (REPO / "README.md").read_text()
    deploying = text.split("## Deploying", 1)[1].split("\n## ", 1)[0]
    links = set(re.findall(r"\]\(([^)#]+)[^)]*\)", deploying))
    for link in links:
        assert (REPO / link).exists(), link
    for artifact in (
        "Dockerfile",
        "packaging/systemd/secretsync.service",
        "packaging/systemd/README.md",
        "packaging/kubernetes/",
        "packaging/ecs/task-definition.json",
        "packaging/iam/secretsync-policy.json",
    ):
        assert artifact in links, artifact
    assert text.index("## Deploying") < text.index("## Development")
