"""The docs agree with the code and the files: every config field, CLI option,
environment variable, metric and alert is documented in the reference pages; every
snippet is valid (YAML parses, secretsync configs pass the loader ``secretsync check``
uses, kustomizations render); every relative link and anchor resolves.

Each check is a function returning its problems, so the tests at the end can prove
that a broken doc makes it fail.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from secretsync.cli import build_parser
from secretsync.config.errors import ConfigError
from secretsync.config.model import Config, OutputConfig, parse_config
from tests.support.configfields import config_field_paths
from tests.support.kustomize import render
from tests.support.markdown import anchors, blocks, links

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
REFERENCE = DOCS / "configuration.md"
MONITORING = DOCS / "monitoring.md"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def doc_files() -> list[Path]:
    """Every Markdown page a user or contributor reads."""
    pages = [REPO / name for name in ("README.md", "CONTRIBUTING.md", "ARCHITECTURE.md")]
    pages += [REPO / "SECURITY.md", *sorted(DOCS.glob("*.md"))]
    pages += sorted((REPO / "packaging").rglob("README.md"))
    pages += sorted((REPO / "examples").rglob("README.md"))
    return [page for page in pages if page.exists()]


def name(path: Path) -> str:
    """``path`` as the problems name it: relative to the checkout when it is inside."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


# -- what must be documented -------------------------------------------------------------


def undocumented(words: list[str], text: str) -> list[str]:
    """The words that ``text`` never mentions as a whole word (not inside a longer name)."""
    return [
        word for word in words if not re.search(rf"(?<![\w.<>-]){re.escape(word)}(?![\w-])", text)
    ]


def cli_options(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of the parser and its subcommands (not -h/--help), and each
    subcommand as ``secretsync NAME``."""
    found: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                found.append(f"secretsync {command}")
                found += cli_options(sub)
        else:
            found += [opt for opt in action.option_strings if opt not in ("-h", "--help")]
    return list(dict.fromkeys(found))


ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
ENV_PREFIXES = ("SECRETSYNC_", "AWS_", "ECS_")


def environment_variables() -> list[str]:
    """The environment variables the daemon reads or sets: names passed to ``.get`` or
    used as a key on something called ``env``/``environ``, and ``SECRETSYNC_*``,
    ``AWS_*`` and ``ECS_*`` names anywhere (some are looked up in a loop, some set for a
    command). The demo's own are not a user's."""
    names: set[str] = set()
    for path in sorted((REPO / "daemon" / "secretsync").rglob("*.py")):
        if "demo" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and ENV_NAME.fullmatch(node.value)
                and node.value.startswith(ENV_PREFIXES)
            ):
                names.add(node.value)
            key = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = ast.unparse(node.func.value).lower()
                if node.func.attr == "get" and "env" in owner and node.args:
                    key = node.args[0]
            if isinstance(node, ast.Subscript) and "env" in ast.unparse(node.value).lower():
                key = node.slice
            if (
                isinstance(key, ast.Constant)
                and isinstance(key.value, str)
                and ENV_NAME.fullmatch(key.value)
            ):
                names.add(key.value)
    return sorted(names)


def metric_names() -> list[str]:
    """The ``secretsync_*`` families of the Metrics registry, as a scrape names them."""
    from secretsync.metrics import Metrics  # noqa: PLC0415 (prometheus_client: only here)

    found = []
    for family in Metrics().registry.collect():
        if family.name.startswith("secretsync_"):
            found.append(family.name + ("_total" if family.type == "counter" else ""))
    return sorted(found)


def alert_names() -> list[str]:
    rules = yaml.safe_load((REPO / "packaging" / "prometheus" / "alerts.yml").read_text())
    return sorted(r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r)


def test_every_config_field_is_in_the_reference() -> None:
    text = REFERENCE.read_text()
    paths = config_field_paths()
    assert len(paths) > 40, "the introspection lost the model"
    assert [p for p in paths if f"`{p}`" not in text] == []


def test_every_cli_option_and_command_is_in_the_reference() -> None:
    options = cli_options(build_parser())
    assert {"--no-watch", "--online", "-V", "secretsync demo", "--password-file"} <= set(options)
    assert undocumented(options, REFERENCE.read_text()) == []


def test_every_environment_variable_is_in_the_reference() -> None:
    variables = environment_variables()
    assert {"SECRETSYNC_CONFIG", "SECRETSYNC_LOG_LEVEL", "AWS_REGION", "NOTIFY_SOCKET"} <= set(
        variables
    )
    text = REFERENCE.read_text()
    section = text[text.index("## Environment variables") :]
    assert undocumented(variables, section) == []


def test_every_metric_is_in_the_monitoring_page() -> None:
    metrics = metric_names()
    assert "secretsync_aws_requests_total" in metrics and len(metrics) > 15
    table = set(re.findall(r"^\| `(secretsync_\w+)` \|", MONITORING.read_text(), re.M))
    assert sorted(set(metrics) - table) == []
    assert sorted(table - set(metrics)) == [], "documented but not exported"


def test_every_alert_is_in_the_monitoring_page() -> None:
    alerts = alert_names()
    assert "SecretsyncDown" in alerts
    table = set(re.findall(r"^\| `(Secretsync\w+)` \|", MONITORING.read_text(), re.M))
    assert sorted(set(alerts) - table) == []
    assert sorted(table - set(alerts)) == [], "documented but not in alerts.yml"


def test_every_exit_code_is_in_the_reference() -> None:
    from secretsync import exitcodes  # noqa: PLC0415

    codes = {v for k, v in vars(exitcodes).items() if k.startswith("EXIT_")}
    assert codes == {0, 1, 2}
    text = REFERENCE.read_text()
    table = text[text.index("## Exit codes") :]
    rows = set(re.findall(r"^\| `([^`]+)` \|", table, re.M))
    assert rows == {str(code) for code in codes} | {"128 + N"}
    assert exitcodes.stopped_by(None) == 143, "the reference says 143 for SIGTERM"


# -- snippets ----------------------------------------------------------------------------

CONFIG_KEYS = set(Config.yaml_keys())  # the YAML keys of the top level and of an output
OUTPUT_KEYS = set(OutputConfig.yaml_keys())
BASE_OUTPUT: dict[str, Any] = {
    "path": "out/client.properties",
    "secrets": [{"id": "team/kafka"}],
}


def as_config(data: object) -> dict[str, Any] | None:
    """A whole config made of a snippet that is (part of) one, or None for another
    kind of YAML. A fragment is completed as little as possible: a section alone gets
    one output; an output (or a list of them) gets the rest; a part of an output
    (``static:``) joins the base output; a target an output names but the snippet does
    not define is made an HTTP target."""
    if isinstance(data, list) and data and all(isinstance(d, dict) and "path" in d for d in data):
        data = {"outputs": data}
    if not isinstance(data, dict) or not data or not all(isinstance(k, str) for k in data):
        return None
    keys = set(data)
    if "outputs" in keys and keys <= CONFIG_KEYS:
        return data
    if keys <= CONFIG_KEYS and not keys & {"path", "secrets", "static"}:
        config = {**data, "outputs": [BASE_OUTPUT]}
    elif keys <= OUTPUT_KEYS and "path" in keys:
        config = {"outputs": [data]}
    elif keys <= OUTPUT_KEYS:
        config = {"outputs": [{**BASE_OUTPUT, **data}]}
    else:
        return None
    named = {n for out in config["outputs"] for n in out.get("notify") or []}
    targets = dict(config.get("notify") or {})
    for target in named - set(targets):
        targets[target] = {"http": {"url": "http://127.0.0.1:8080/reload"}}
    if targets:
        config["notify"] = targets
    return config


def snippet_problems(path: Path, workdir: Path) -> list[str]:
    """Every ```yaml block of ``path`` parses; each one that is a secretsync config (or
    part of one) is accepted by the config loader, which is what `secretsync check` runs."""
    problems = []
    for block in blocks(path.read_text(), "yaml"):
        where = f"{name(path)}:{block.line}"
        try:
            documents = list(yaml.safe_load_all(block.text))
        except yaml.YAMLError as exc:
            problems.append(f"{where}: not YAML: {str(exc).splitlines()[0]}")
            continue
        for document in documents:
            config = as_config(document)
            if config is None:
                continue
            try:
                parse_config(copy.deepcopy(config), base_dir=workdir)
            except ConfigError as exc:
                problems.append(f"{where}: secretsync check refuses it: {exc}")
    return problems


def test_every_yaml_snippet_parses_and_every_config_snippet_passes_check(
    tmp_path: Path,
) -> None:
    assert [p for page in doc_files() for p in snippet_problems(page, tmp_path)] == []


def test_the_config_snippets_are_checked_at_all() -> None:
    # a guard against as_config silently classifying everything as "not a config"
    checked = [
        block
        for page in doc_files()
        for block in blocks(page.read_text(), "yaml")
        if any(as_config(d) is not None for d in yaml.safe_load_all(block.text))
    ]
    assert len(checked) >= 15, len(checked)


@pytest.mark.slow
def test_a_full_config_snippet_passes_the_cli_check(tmp_path: Path) -> None:
    # the loader above is what the command runs; once, the command itself
    (block,) = [
        b
        for b in blocks(REFERENCE.read_text(), "yaml")
        if b.text.lstrip().startswith("notify:") and "kafka-app-endpoint" in b.text
    ]
    config = as_config(yaml.safe_load(block.text))
    path = tmp_path / "sync.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "secretsync", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        if IN_CI:
            pytest.fail("kubectl is not installed; .ci/run must install it")
        pytest.skip("kubectl is not installed (CI installs it)")
    return found


def kustomize_dirs(tmp_path: Path) -> dict[str, Path]:
    """For each page with a ``# kustomization.yaml`` block: a directory holding its named
    blocks, with ``../secretsync/…`` (a checkout next to yours) pointing at this one and
    each missing ``configMapGenerator`` file a copy of the shipped sync.yaml."""
    shipped = yaml.safe_load((REPO / "packaging" / "kubernetes" / "configmap.yaml").read_text())
    dirs = {}
    for page in doc_files():
        if page.parent == REPO / "packaging" / "kubernetes":
            continue  # its README's files wrap a team's own Deployment: test_packaging.py
        named = {b.file_name: b.text for b in blocks(page.read_text(), "yaml") if b.file_name}
        if "kustomization.yaml" not in named:
            continue
        work = tmp_path / name(page).replace("/", "_")
        work.mkdir()
        kust = yaml.safe_load(named["kustomization.yaml"])
        for key in ("resources", "components"):
            kust[key] = [
                os.path.relpath(REPO / ref.removeprefix("../secretsync/"), work)
                if ref.startswith("../secretsync/")
                else ref
                for ref in kust.get(key, [])
            ] or None
        kust = {k: v for k, v in kust.items() if v is not None}
        named["kustomization.yaml"] = yaml.safe_dump(kust)
        for file, text in named.items():
            (work / file).write_text(text)
        for generator in kust.get("configMapGenerator", []):
            for file in generator.get("files", []):
                if not (work / file).exists():
                    (work / file).write_text(shipped["data"]["sync.yaml"])
        dirs[name(page)] = work
    return dirs


@pytest.mark.slow
def test_every_kustomization_in_the_docs_renders(tmp_path: Path) -> None:
    tool = kubectl()
    dirs = kustomize_dirs(tmp_path)
    assert {"docs/eks.md", "docs/java.md"} <= set(dirs)
    for page, work in dirs.items():
        objects = render(tool, work)
        kinds = {o["kind"] for o in objects}
        assert "Deployment" in kinds, page
        if page == "docs/eks.md":
            (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
            (sidecar,) = deployment["spec"]["template"]["spec"]["initContainers"]
            assert sidecar["image"].endswith("/secretsync:0.3.0")
            (account,) = [o for o in objects if o["kind"] == "ServiceAccount"]
            assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]
        if page == "docs/java.md":
            pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]
            mounts = {
                c["name"]: {m["name"]: m for m in c["volumeMounts"]}
                for c in pod["spec"]["containers"] + pod["spec"]["initContainers"]
            }
            assert mounts["app"]["kafka-app-run"].get("readOnly") is not True, "app writes it"
            assert mounts["app"]["kafka-config"]["readOnly"] is True


def test_the_podmonitor_shown_is_the_shipped_file() -> None:
    shipped = yaml.safe_load((REPO / "packaging" / "kubernetes" / "podmonitor.yaml").read_text())
    shown = [
        doc
        for b in blocks(MONITORING.read_text(), "yaml")
        for doc in yaml.safe_load_all(b.text)
        if isinstance(doc, dict) and doc.get("kind") == "PodMonitor"
    ]
    assert shown == [shipped]


# -- links -------------------------------------------------------------------------------


def link_problems(page: Path, root: Path = REPO) -> list[str]:
    """Relative links of ``page`` whose file, or whose anchor in a Markdown file, is
    missing, or that lead out of ``root``."""
    problems = []
    for target in links(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, fragment = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            problems.append(f"{name(page)}: {target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            problems.append(f"{name(page)}: {target}: no such anchor")
        elif not dest.is_relative_to(root):
            problems.append(f"{name(page)}: {target}: outside the repository")
    return problems


def test_every_relative_link_and_anchor_resolves() -> None:
    pages = doc_files()
    assert len(pages) >= 15
    assert [p for page in pages for p in link_problems(page)] == []


# -- what the docs say agrees with the files -------------------------------------------


def test_readme_installs_what_the_release_workflow_publishes() -> None:
    workflow = (REPO / ".github" / "workflows" / "release.yml").read_text()
    release = yaml.safe_load(workflow)
    image = release["env"]["IMAGE"]
    assert image == "ghcr.io/${{ github.repository_owner }}/secretsync"
    source = re.search(
        r'image\.source="https://github\.com/([^/"]+)/', (REPO / "Dockerfile").read_text()
    )
    assert source is not None
    image = image.replace("${{ github.repository_owner }}", source.group(1))
    project = release["jobs"]["pypi"]["environment"]["url"].rstrip("/").rsplit("/", 1)[1]
    readme = (REPO / "README.md").read_text()
    assert f'docker pull "{image}:$VERSION"' in readme
    assert f'pip install "{project}==$VERSION"' in readme
    # the workflow tags X.Y.Z and X.Y, never latest
    for page in doc_files():
        assert not re.search(r"secretsync:latest\b", page.read_text()), name(page)


def shipped_and_shown_configs() -> list[tuple[str, dict[str, Any]]]:
    configs = [("sync.yaml.example", yaml.safe_load((REPO / "sync.yaml.example").read_text()))]
    configs.append(("ecs", yaml.safe_load((REPO / "packaging/ecs/sync.yaml").read_text())))
    k8s = yaml.safe_load((REPO / "packaging/kubernetes/configmap.yaml").read_text())
    configs.append(("kubernetes", yaml.safe_load(k8s["data"]["sync.yaml"])))
    for page in doc_files():
        for block in blocks(page.read_text(), "yaml"):
            for doc in yaml.safe_load_all(block.text):
                config = as_config(doc)
                if config is not None:
                    configs.append((f"{name(page)}:{block.line}", config))
    return configs


def test_no_pidfile_is_under_the_apps_read_only_mount() -> None:
    # the app mounts /etc/kafka read-only (EKS, ECS): it cannot write a pidfile there
    for where, config in shipped_and_shown_configs():
        for target_name, target in (config.get("notify") or {}).items():
            pidfile = str((target or {}).get("pidfile", ""))
            assert not pidfile.startswith("/etc/kafka/"), f"{where}: notify.{target_name}"


def test_no_command_target_reloads_a_jvm_that_may_have_no_handler() -> None:
    # `reload` runs ExecReload= (kill -HUP), which kills a JVM without a SIGHUP handler
    for where, config in shipped_and_shown_configs():
        for target_name, target in (config.get("notify") or {}).items():
            command = " ".join((target or {}).get("command") or [])
            assert "reload" not in command, f"{where}: notify.{target_name}"


def test_the_docs_say_what_the_files_are() -> None:
    for page in doc_files():
        text = page.read_text()
        assert "stand-in Java app" not in text, f"{name(page)}: the demo's app is Python"
    for path in (REPO / "packaging" / "ecs").iterdir():
        assert "shareProcessNamespace" not in path.read_text(), f"{name(path)}: ECS: pidMode"
    reference = REFERENCE.read_text()
    assert "empty `metrics:` keeps metrics on `127.0.0.1:9464`" in reference
    empty = parse_config({"metrics": None, "outputs": [BASE_OUTPUT]}, base_dir=REPO)
    assert empty.metrics.listen == "127.0.0.1:9464"


# -- the checks can fail -----------------------------------------------------------------


def test_the_checks_catch_a_broken_doc(tmp_path: Path) -> None:
    page = tmp_path / "broken.md"
    target = tmp_path / "other.md"
    target.write_text("# Other\n\n## A section\n")
    page.write_text(
        "# Broken\n\n[ok](other.md#a-section) [gone](missing.md) [anchor](other.md#nope)\n\n"
        "```yaml\nkey: [unclosed\n```\n\n"
        "```yaml\npoll: {interval: 3 fortnights}\n```\n\n"
        "```yaml\n- path: /etc/kafka/x.properties\n  secrets: []\n```\n"
    )
    link = link_problems(page, root=tmp_path)
    snippets = snippet_problems(page, tmp_path)
    assert link == [
        "broken.md: missing.md: no such file",
        "broken.md: other.md#nope: no such anchor",
    ]
    assert len(snippets) == 3 and "not YAML" in snippets[0], snippets
    assert "poll.interval" in snippets[1] and "outputs[0].secrets" in snippets[2], snippets
    assert undocumented(["--no-watch", "-c", "SECRETSYNC_X"], "`--no-watch-x` -c x") == [
        "--no-watch",
        "SECRETSYNC_X",
    ]
