"""Read a .properties file the way Kafka does: java.util.Properties.load(InputStream)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

JAVA_SOURCE = r"""
import java.io.FileInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import java.util.TreeSet;

public class ReadProps {
    private static String hex(String s) {
        StringBuilder b = new StringBuilder();
        for (byte x : s.getBytes(StandardCharsets.UTF_8)) b.append(String.format("%02x", x));
        return b.toString();
    }
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        try (InputStream in = new FileInputStream(args[0])) { p.load(in); }
        for (String k : new TreeSet<>(p.stringPropertyNames())) {
            System.out.println(hex(k) + " " + hex(p.getProperty(k)));
        }
    }
}
"""


class JavaProperties:
    def __init__(self, classdir: Path) -> None:
        self.classdir = classdir

    def load(self, path: Path) -> dict[str, str]:
        out = subprocess.run(
            ["java", "-cp", str(self.classdir), "ReadProps", str(path)],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        result = {}
        for line in out.splitlines():
            key, _, value = line.partition(" ")
            result[bytes.fromhex(key).decode()] = bytes.fromhex(value).decode()
        return result


def compile_reader(workdir: Path) -> JavaProperties:
    if not (shutil.which("javac") and shutil.which("java")):
        if os.environ.get("CI"):
            pytest.fail("no JDK (javac/java) on this machine, and CI is set: install one")
        pytest.skip("no JDK on this machine (CI unset)")
    (workdir / "ReadProps.java").write_text(JAVA_SOURCE)
    subprocess.run(["javac", "ReadProps.java"], cwd=workdir, check=True, timeout=120)
    return JavaProperties(workdir)
