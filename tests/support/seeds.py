"""What the tests put into Secrets Manager: the example's secret ids and canary values.

Canaries: if one of these values shows up in a log, a metric or an error, a secret leaked.
"""

from __future__ import annotations

REGION = "us-east-1"
KAFKA_ID = "/confluent_cloud_resource/kafka_cluster/java_client"
SR_ID = "/confluent_cloud_resource/schema_registry_cluster/java_client"

CANARY_PASSWORD = 'CANARY-pw-7f3a9c"\\quote'
CANARY_SR_SECRET = "CANARY-sr-b41d2e"


def kafka_secret(password: str = CANARY_PASSWORD, user: str = "CANARYKEY1") -> dict[str, str]:
    """The Kafka client secret of the example (JAAS line and bootstrap servers)."""
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{user}" password="{password}";'
    )
    return {
        "sasl.jaas.config": jaas,
        "bootstrap.servers": "pkc-12345.us-east-1.aws.confluent.cloud:9092",
    }


def sr_secret(secret: str = CANARY_SR_SECRET) -> dict[str, str]:
    """The Schema Registry client secret of the example."""
    return {
        "basic.auth.credentials.source": "USER_INFO",
        "basic.auth.user.info": f"SRKEY:{secret}",
        "schema.registry.url": "https://psrc-abcde.us-east-1.aws.confluent.cloud",
    }
