"""Read .properties files the way Kafka does: java.util.Properties.load(InputStream).

One JVM start costs about half a second, so :meth:`JavaProperties.load_many`
reads any number of files in a single process.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.support.require import require

# a quick start for the short-lived JVMs the tests start: no JIT tiers past C1, one GC
# thread (an example app's JVM: ≈ 2.2 → 1.3 CPU-s)
QUICK_JVM_FLAGS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")

JAVA_SOURCE = r"""
import java.io.BufferedOutputStream;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import java.util.TreeSet;

public class ReadProps {
    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private static void hex(StringBuilder b, String s) {
        for (byte x : s.getBytes(StandardCharsets.UTF_8)) {
            b.append(HEX[(x >> 4) & 0xf]).append(HEX[x & 0xf]);
        }
    }

    // Per file: a "--" line, then "<hex UTF-8 key> <hex UTF-8 value>" per property.
    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(new BufferedOutputStream(System.out, 1 << 16), false);
        for (String path : args) {
            Properties p = new Properties();
            try (InputStream in = new FileInputStream(path)) { p.load(in); }
            StringBuilder b = new StringBuilder("--\n");
            for (String k : new TreeSet<>(p.stringPropertyNames())) {
                hex(b, k);
                b.append(' ');
                hex(b, p.getProperty(k));
                b.append('\n');
            }
            out.print(b);
        }
        out.flush();
    }
}
"""


class JavaProperties:
    def __init__(self, classdir: Path) -> None:
        self.classdir = classdir

    def load(self, path: Path) -> dict[str, str]:
        """The properties Java reads from one file."""
        return self.load_many([path])[0]

    def load_many(self, paths: Sequence[Path]) -> list[dict[str, str]]:
        """The properties Java reads from each file, in order, with one JVM."""
        if not paths:
            return []
        out = subprocess.run(
            ["java", *QUICK_JVM_FLAGS, "-cp", str(self.classdir), "ReadProps", *map(str, paths)],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        results: list[dict[str, str]] = []
        for line in out.splitlines():
            if line == "--":
                results.append({})
                continue
            key, _, value = line.partition(" ")
            results[-1][bytes.fromhex(key).decode()] = bytes.fromhex(value).decode()
        assert len(results) == len(paths), f"java read {len(results)} of {len(paths)} files"
        return results


def compile_reader(workdir: Path) -> JavaProperties:
    require("javac", "java", fix="install a JDK")
    (workdir / "ReadProps.java").write_text(JAVA_SOURCE)
    subprocess.run(["javac", "ReadProps.java"], cwd=workdir, check=True, timeout=120)
    return JavaProperties(workdir)
