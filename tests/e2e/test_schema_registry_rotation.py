"""A rotated Schema Registry key reaches a running Schema Registry client: zero 401s.

moto + ``secretsync run`` + a Schema Registry stand-in (basic auth against a set the test
changes) + a JVM that calls ``FileBasicAuthCredentialProvider`` the way Confluent's client
does: found with ServiceLoader by its alias, configured once, asked before every request.
The rotation is staged like an API key's: the new key valid beside the old one, the new
version made AWSCURRENT, the file rewritten, requests seen with the new key, the old key
deleted, and on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.configs import example_config, write_yaml
from tests.support.daemon import Daemon
from tests.support.kafka import SrProbe, require_maven
from tests.support.motoserver import Moto
from tests.support.seeds import SR_ID
from tests.support.srstandin import SchemaRegistryStandIn
from tests.support.wait import wait_until

pytestmark = pytest.mark.timeout(900)  # a clean machine fetches the client jars first

OLD = "SRKEY1:CANARY-sr-b41d2e"
NEW = 'SRKEY2:ROTATED-sr-"\\:x'
PROVIDER_ALIAS = "SECRETSYNC_FILE"
PROVIDER_FILE_CONFIG = "secretsync.basic.auth.file"


@pytest.fixture
def schema_registry() -> Iterator[SchemaRegistryStandIn]:
    standin = SchemaRegistryStandIn().start()
    try:
        yield standin
    finally:
        standin.stop()


def sr_secret_for(user_info: str, url: str) -> dict[str, str]:
    return {
        "basic.auth.credentials.source": "USER_INFO",
        "basic.auth.user.info": user_info,
        "schema.registry.url": url,
    }


def test_a_rotated_key_reaches_a_running_schema_registry_client_with_zero_401s(
    moto: Moto,
    tmp_path: Path,
    start_daemon: Any,
    schema_registry: SchemaRegistryStandIn,
    java_programs: Any,
) -> None:
    require_maven()
    schema_registry.set_valid(OLD)
    moto.create(SR_ID, sr_secret_for(OLD, schema_registry.url))
    out = tmp_path / "out" / "schema-registry.properties"
    data = example_config(tmp_path / "out", moto.url, poll={"interval": "500ms", "jitter": 0})
    data["outputs"] = [
        {
            "path": str(out),
            "secrets": [{"id": SR_ID, "keys": ["basic.auth.user.info", "schema.registry.url"]}],
            # the client loads this file as it is: the provider is chosen in it
            "static": {
                "basic.auth.credentials.source": PROVIDER_ALIAS,
                PROVIDER_FILE_CONFIG: str(out),
            },
        }
    ]
    daemon: Daemon = start_daemon(write_yaml(tmp_path / "sync.yaml", data))
    wait_until(out.exists, 30, "the first file")

    probe: SrProbe = java_programs(SrProbe, "sr-probe", out)

    def ok_with(user: str, n: int) -> bool:
        probe.alive()
        assert schema_registry.unauthorized == 0, "a request was refused"
        return schema_registry.ok(user) >= n

    wait_until(lambda: ok_with("SRKEY1", 20), 90, "requests with the first key")

    schema_registry.set_valid(OLD, NEW)  # the new key, valid beside the old one
    moto.rotate(SR_ID, sr_secret_for(NEW, schema_registry.url))
    wait_until(lambda: ok_with("SRKEY2", 20), 60, "requests with the new key")
    schema_registry.set_valid(NEW)  # the old key deleted
    at_delete = schema_registry.ok("SRKEY2")
    wait_until(lambda: ok_with("SRKEY2", at_delete + 50), 60, "requests after the old key went")

    final = probe.stop()
    assert schema_registry.unauthorized == 0
    assert final["pid"] == probe.pid
    assert final["statuses"] == {"200": final["requests"]}, final["statuses"]
    log = probe.stderr()
    assert "secretsync: read Schema Registry credentials from" in log, log[-2000:]
    for value in ("CANARY-sr-b41d2e", "ROTATED-sr-", "SRKEY1", "SRKEY2"):
        assert value not in log + probe.stdout(), "the client logged a credential"
    for value in ("CANARY-sr-b41d2e", "ROTATED-sr-"):
        assert value not in daemon.log_path.read_text()
