"""The baseline for the scale row: aioboto3 alone, DescribeSecret + GetSecretValue(VersionId).

    python bench/raw_client.py URL COUNT CONCURRENCY [example]

Fetches the current version of ``bench/scale/0000`` … ``COUNT-1`` (or, with
``example``, of the two secrets of sync.yaml.example) the way secretsync does
(Describe, then Get pinned to the version), at most CONCURRENCY at a time, and
nothing else: no config, no files, no logs.
"""

from __future__ import annotations

import asyncio
import sys

import aioboto3
from aiobotocore.config import AioConfig

EXAMPLE = (
    "/confluent_cloud_resource/kafka_cluster/java_client",
    "/confluent_cloud_resource/schema_registry_cluster/java_client",
)


async def main(url: str, count: int, concurrency: int, example: bool) -> None:
    limit = asyncio.Semaphore(concurrency)
    config = AioConfig(max_pool_connections=concurrency)
    session = aioboto3.Session()
    async with session.client(
        "secretsmanager", region_name="us-east-1", endpoint_url=url, config=config
    ) as client:

        async def one(name: str) -> None:
            async with limit:
                described = await client.describe_secret(SecretId=name)
                version = next(
                    v
                    for v, stages in described["VersionIdsToStages"].items()
                    if "AWSCURRENT" in stages
                )
                await client.get_secret_value(SecretId=name, VersionId=version)

        names = EXAMPLE if example else [f"bench/scale/{n:04d}" for n in range(count)]
        await asyncio.gather(*(one(name) for name in names))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:] == ["example"]))
