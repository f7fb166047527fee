"""The naive baseline: GetSecretValue of every secret, every poll, and write the files.

    python bench/naive_poller.py URL OUT_DIR POLLS

What a hand-written cron script does: no version check, a fetch per secret
per poll, plain (non-atomic) writes, no escaping beyond ``key=value``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3

SECRETS = {
    "client.properties": ["/confluent_cloud_resource/kafka_cluster/java_client"],
    "schema-registry.properties": ["/confluent_cloud_resource/schema_registry_cluster/java_client"],
    "combined.properties": [
        "/confluent_cloud_resource/kafka_cluster/java_client",
        "/confluent_cloud_resource/schema_registry_cluster/java_client",
    ],
}


def main(url: str, out: Path, polls: int) -> None:
    client = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=url)
    out.mkdir(parents=True, exist_ok=True)
    for _ in range(polls):
        values = {}
        for ids in SECRETS.values():
            for secret_id in ids:
                values[secret_id] = json.loads(
                    client.get_secret_value(SecretId=secret_id)["SecretString"]
                )
        for name, ids in SECRETS.items():
            lines = [f"{k}={v}" for secret_id in ids for k, v in values[secret_id].items()]
            (out / name).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]))
