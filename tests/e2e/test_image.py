"""Build the Dockerfile with buildah and run the image against moto (opt-in: ``make image-test``).

Base images cannot be pulled here, so the test makes its own: a Debian
bookworm root file system from ``debootstrap`` with Python 3.11, pip and venv,
imported as a local image and passed as ``--build-arg PYTHON_IMAGE``. The
build stage reaches PyPI for the dependencies, hash-checked against
requirements.lock. It then checks the image config (user, entrypoint, cmd,
port, health check, labels, the output volume), the output directory's owner
in the image's file system, that the venv holds exactly the locked versions,
and runs ``secretsync once`` in a container as uid 10001 against moto on
127.0.0.1, with sync.yaml and the output directory mounted where the
Dockerfile and the manifests put them.

Takes about a minute and a half and needs root, buildah and debootstrap; it
runs only when ``SECRETSYNC_IMAGE_TEST=1``. CI lints the Dockerfile instead.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from secretsync import __version__
from tests.support.configs import example_config, write_yaml
from tests.support.lockfile import parse_lock
from tests.support.motoserver import Moto
from tests.support.paths import REPO

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("SECRETSYNC_IMAGE_TEST") != "1",
        reason="builds a container image (about 90 s): run `make image-test`",
    ),
    pytest.mark.timeout(900),  # debootstrap and the build count against the first test
]
BASE = "localhost/secretsync-test-base:bookworm"
IMAGE = "localhost/secretsync:test"


class Buildah:
    """buildah with its own storage under a temp dir (vfs driver, chroot isolation)."""

    def __init__(self, root: Path) -> None:
        exe = shutil.which("buildah")
        if exe is None:
            pytest.fail("buildah is not installed (apt-get install buildah)")
        self.cmd = [
            exe,
            "--root",
            str(root / "storage"),
            "--runroot",
            str(root / "run"),
            "--storage-driver",
            "vfs",
        ]

    def __call__(self, *args: str, timeout_s: float = 600) -> str:
        result = subprocess.run(
            [*self.cmd, *args], capture_output=True, text=True, timeout=timeout_s
        )
        assert result.returncode == 0, f"buildah {args[0]} failed:\n{result.stderr[-4000:]}"
        return result.stdout


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Buildah, dict[str, Any]]]:
    if os.geteuid() != 0:
        pytest.fail("building an image with chroot isolation needs root")
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        pytest.fail("debootstrap is not installed (apt-get install debootstrap)")
    work = tmp_path_factory.mktemp("image")
    buildah = Buildah(work)
    rootfs = work / "rootfs"
    subprocess.run(
        [
            debootstrap,
            "--variant=minbase",
            "--include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates",
            "bookworm",
            str(rootfs),
            "http://deb.debian.org/debian",
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    # the host's CA bundle, so pip in the build stage trusts what the host trusts
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc/ssl/certs/")
    context = work / "base"
    context.mkdir()
    with tarfile.open(context / "rootfs.tar", "w") as tar:
        tar.add(rootfs, arcname=".")
    (context / "Containerfile").write_text('FROM scratch\nADD rootfs.tar /\nCMD ["/bin/bash"]\n')
    buildah("bud", "--isolation", "chroot", "-t", BASE, str(context))
    shutil.rmtree(rootfs)

    buildah(
        "bud",
        "--isolation",
        "chroot",
        "--pull=never",
        "--format",
        "docker",  # OCI image configs have no HEALTHCHECK
        "--build-arg",
        f"PYTHON_IMAGE={BASE}",
        "--build-arg",
        f"VERSION={__version__}",
        "-t",
        IMAGE,
        str(REPO),
    )
    inspect = json.loads(buildah("inspect", "--type", "image", IMAGE))
    yield buildah, inspect
    buildah("rmi", "--all", "--force")


def test_image_config_matches_the_contract(image: tuple[Buildah, dict[str, Any]]) -> None:
    _buildah, inspect = image
    config = inspect["Docker"]["config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["secretsync"]
    assert config["Cmd"] == ["run"]
    assert "9464/tcp" in config["ExposedPorts"]
    assert config["Healthcheck"]["Test"] == ["CMD", "secretsync", "health"]
    assert config["Labels"]["org.opencontainers.image.version"] == __version__
    assert config["Labels"]["org.opencontainers.image.title"] == "secretsync"
    # a new Docker/ECS volume at the output directory is initialised from the image
    assert set(config["Volumes"]) == {"/etc/kafka"}


def test_output_directory_in_the_image_is_owned_by_10001(
    image: tuple[Buildah, dict[str, Any]],
) -> None:
    # What a new volume at /etc/kafka is initialised from: owner and mode included.
    buildah, _inspect = image
    container = buildah("from", "--pull-never", IMAGE).strip()
    try:
        root = Path(buildah("mount", container).strip())
        st = os.stat(root / "etc/kafka")
        assert (st.st_uid, st.st_gid) == (10001, 10001)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o750
        assert list((root / "etc/kafka").iterdir()) == []
        buildah("umount", container)
    finally:
        buildah("rm", container)


def test_image_holds_exactly_the_locked_dependencies(
    image: tuple[Buildah, dict[str, Any]],
) -> None:
    buildah, _inspect = image
    container = buildah("from", "--pull-never", IMAGE).strip()
    try:
        listing = buildah(
            "run",
            "--isolation",
            "chroot",
            container,
            "--",
            "python",
            "-c",
            "import importlib.metadata as m, json;"
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))",
            timeout_s=120,
        )
    finally:
        buildah("rm", container)
    installed = {canonicalize_name(n): v for n, v in json.loads(listing).items()}
    pins, _other = parse_lock((REPO / "requirements.lock").read_text())
    assert installed.pop(canonicalize_name("secretsync-sidecar")) == __version__
    assert installed == {pin.name: pin.version for pin in pins}


def test_image_syncs_as_uid_10001_into_the_output_volume(
    image: tuple[Buildah, dict[str, Any]], moto: Moto, tmp_path: Path
) -> None:
    buildah, _inspect = image
    moto.seed_use_case()
    etc = tmp_path / "etc-secretsync"
    etc.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    os.chown(out, 10001, 10001)  # what fsGroup / a prepared volume gives the sidecar
    data = example_config(Path("/etc/kafka"), moto.url)
    write_yaml(etc / "sync.yaml", data)
    container = buildah("from", "--pull-never", IMAGE).strip()
    # buildah run mounts the image's anonymous VOLUME at /etc/kafka too, and which of
    # the two mounts ends on top varies from run to run: the files then went into a
    # throwaway copy. Dropping the declaration from this working container (not the
    # image, whose VOLUME is checked above) leaves the bind mount, as on ECS and EKS.
    buildah("config", "--volume", "/etc/kafka-", container)
    try:
        buildah(
            "run",
            "--isolation",
            "chroot",
            "-v",
            f"{etc}:/etc/secretsync:ro",
            "-v",
            f"{out}:/etc/kafka",
            "-e",
            "AWS_ACCESS_KEY_ID=testing",
            "-e",
            "AWS_SECRET_ACCESS_KEY=testing",
            "-e",
            "AWS_EC2_METADATA_DISABLED=true",
            container,
            "--",
            "secretsync",
            "once",  # the default config path: /etc/secretsync/sync.yaml
            timeout_s=120,
        )
    finally:
        buildah("rm", container)
    for name in ("client.properties", "schema-registry.properties", "combined.properties"):
        st = os.stat(out / name)
        assert (st.st_uid, st.st_gid) == (10001, 10001)
        assert stat.S_IMODE(st.st_mode) == 0o600
