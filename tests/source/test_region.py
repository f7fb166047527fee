"""awsenv.py: which region the daemon would use, and `secretsync check` warning when none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from secretsync.source.region import region_from_config_file, resolve_region
from tests.support.daemon import run_cli

WARNING = "warning: no AWS region: set aws.region, AWS_REGION or a region in the AWS config file"
NO_REGION_CONFIG = "outputs: [{path: /o/a, secrets: [{id: s}]}]\n"


@pytest.fixture
def no_region_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No region in the environment (children inherit it); returns an empty AWS config file."""
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    aws_config = tmp_path / "aws-config"
    aws_config.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_config))
    return aws_config


def check(tmp_path: Path, text: str = NO_REGION_CONFIG) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "sync.yaml"
    cfg.write_text(text)
    return run_cli("check", "-c", str(cfg))


@pytest.mark.slow
def test_check_warns_when_no_region_can_be_found(tmp_path: Path, no_region_env: Path) -> None:
    result = check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ok (1 outputs, 1 secrets)" in result.stdout
    assert WARNING in result.stderr


@pytest.mark.parametrize(
    ("how", "env", "aws_config", "config_text"),
    [
        ("aws.region", {}, "", "aws: {region: eu-west-1}\n" + NO_REGION_CONFIG),
        ("AWS_REGION", {"AWS_REGION": "eu-west-1"}, "", NO_REGION_CONFIG),
        ("AWS_DEFAULT_REGION", {"AWS_DEFAULT_REGION": "eu-west-1"}, "", NO_REGION_CONFIG),
        ("config file", {}, "[default]\nregion = eu-west-1\n", NO_REGION_CONFIG),
        (
            "profile",
            {"AWS_PROFILE": "dev"},
            "[default]\noutput = json\n[profile dev]\nregion = eu-west-1\n",
            NO_REGION_CONFIG,
        ),
    ],
    ids=["aws.region", "AWS_REGION", "AWS_DEFAULT_REGION", "config file", "profile"],
)
@pytest.mark.slow
def test_check_is_quiet_when_a_region_is_found(
    tmp_path: Path,
    no_region_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    env: dict[str, str],
    aws_config: str,
    config_text: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    no_region_env.write_text(aws_config)

    result = check(tmp_path, config_text)

    assert result.returncode == 0, (how, result.stderr)
    assert "warning" not in result.stderr, how


@pytest.mark.parametrize(
    ("profile", "text"),
    [
        ("default", "[profile dev]\nregion = eu-west-1\n"),  # another profile's region
        ("dev", "[default]\nregion = eu-west-1\n"),  # the default profile's region
        ("dev", "[dev]\nregion = eu-west-1\n"),  # the credentials-file section form
        ("default", "[default]\nregion =\n"),
        ("default", "region = eu-west-1\n"),  # no section header: malformed
        ("default", "[default]\nregion = eu-west-1\n[default]\n"),
    ],
)
def test_region_lookup_in_the_aws_config_file(tmp_path: Path, profile: str, text: str) -> None:
    path = tmp_path / "config"
    path.write_text(text)
    expected = "eu-west-1" if text.endswith("[default]\n") else None
    assert region_from_config_file(str(path), profile) == expected


def test_region_order_and_unreadable_files(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("[default]\nregion = from-file\n")
    env = {"AWS_CONFIG_FILE": str(path)}
    assert resolve_region("configured", {**env, "AWS_REGION": "env"}) == "configured"
    assert resolve_region(None, {**env, "AWS_REGION": "env", "AWS_DEFAULT_REGION": "d"}) == "env"
    assert resolve_region(None, {**env, "AWS_DEFAULT_REGION": "default-env"}) == "default-env"
    assert resolve_region(None, {**env, "AWS_REGION": "  "}) == "from-file"
    assert resolve_region(None, {"AWS_CONFIG_FILE": str(tmp_path / "missing")}) is None
    assert resolve_region(None, {"AWS_CONFIG_FILE": str(tmp_path)}) is None  # a directory
    path.write_bytes(b"[default]\nregion = \xff\n")
    assert resolve_region(None, env) is None
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").write_text("[default]\nregion = from-home\n")
    assert resolve_region(None, {"HOME": str(tmp_path)}) == "from-home"


@pytest.mark.slow
def test_the_lookup_does_not_import_the_aws_sdk() -> None:
    code = (
        "import sys\n"
        "import secretsync.source.region, secretsync.config.model\n"
        "heavy = {'botocore', 'boto3', 'aioboto3', 'aiobotocore', 'aiohttp'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
