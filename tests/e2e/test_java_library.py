"""What the published jar of secretsync-kafka holds: Java 11 bytecode, its service entry,
and no copy of Confluent's interface (that copy is compile-only)."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
import zipfile

from tests.support.kafka import JAVA, LIBRARY_JAR, java_jars, require_maven

SERVICE = (
    "META-INF/services/"
    "io.confluent.kafka.schemaregistry.client.security.basicauth.BasicAuthCredentialProvider"
)
JAVA_11 = 55  # class file major version


def test_the_jar_is_java_11_bytecode_with_its_service_entry_and_no_confluent_class() -> None:
    require_maven()
    java_jars()
    with zipfile.ZipFile(LIBRARY_JAR) as jar:
        names = jar.namelist()
        classes = [n for n in names if n.endswith(".class")]
        assert classes and all(n.startswith("dev/secretsync/kafka/") for n in classes), classes
        for name in classes:
            magic, _minor, major = struct.unpack(">IHH", jar.read(name)[:8])
            assert (magic, major) == (0xCAFEBABE, JAVA_11), name
        assert jar.read(SERVICE).decode().split() == [
            "dev.secretsync.kafka.FileBasicAuthCredentialProvider"
        ]


def test_kafka_clients_is_provided_and_nothing_else_is_a_run_time_dependency() -> None:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    pom = ET.parse(JAVA / "secretsync-kafka" / "pom.xml").getroot()
    scopes = {
        d.findtext("m:artifactId", namespaces=ns): d.findtext("m:scope", namespaces=ns)
        for d in pom.iterfind("m:dependencies/m:dependency", ns)
    }
    parent = ET.parse(JAVA / "pom.xml").getroot()
    managed = {
        d.findtext("m:artifactId", namespaces=ns): d.findtext("m:scope", namespaces=ns)
        for d in parent.iterfind("m:dependencyManagement/m:dependencies/m:dependency", ns)
    }
    effective = {name: scope or managed.get(name) for name, scope in scopes.items()}
    assert effective == {
        "kafka-clients": "provided",
        "sr-api": "provided",
        "junit-jupiter": "test",
    }
    release = parent.findtext("m:properties/m:maven.compiler.release", namespaces=ns)
    assert release == "11"
