"""Read rendered .properties files the way a Kafka client would, and parse their JAAS line.

For each file, one JVM (for any number of files) does what the client does:
``java.util.Properties.load(InputStream)``, then hands ``sasl.jaas.config`` to
two JAAS parsers that nobody here wrote the grammar of:

- ``jdk``: the JDK's own login-configuration file parser (``ConfigFile``,
  reached through ``Configuration.getInstance("JavaLoginConfig", URIParameter)``)
  reading a file ``KafkaClient { <value> };``. The file parser expands
  ``${prop}`` in option values, a feature of JAAS *files* that has no escape;
  Kafka never applies it to ``sasl.jaas.config``, so it is switched off here
  with the JDK's documented ``policy.expandProperties=false``.
- ``kafka``: ``java.io.StreamTokenizer`` configured the way Kafka's
  ``org.apache.kafka.common.security.JaasConfig`` configures it for the
  ``sasl.jaas.config`` property (``resetSyntax``; word chars 32-128 and
  160-255; ``;`` and ``=`` ordinary; 0-32 whitespace; ``/`` comments; ``"`` and
  ``'`` quotes), with its entry grammar ``module flag (key=value)* ;``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.java import QUICK_JVM_FLAGS
from tests.support.require import require

JAVA_SOURCE = r"""
import java.io.BufferedOutputStream;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.StreamTokenizer;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.Security;
import java.security.URIParameter;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.TreeSet;
import javax.security.auth.login.AppConfigurationEntry;
import javax.security.auth.login.AppConfigurationEntry.LoginModuleControlFlag;
import javax.security.auth.login.Configuration;

public class ReadJaas {
    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private static String hex(String s) {
        StringBuilder b = new StringBuilder();
        for (byte x : s.getBytes(StandardCharsets.UTF_8)) {
            b.append(HEX[(x >> 4) & 0xf]).append(HEX[x & 0xf]);
        }
        return b.length() == 0 ? "-" : b.toString();
    }

    private static String flagName(LoginModuleControlFlag f) {
        if (f == LoginModuleControlFlag.REQUIRED) return "REQUIRED";
        if (f == LoginModuleControlFlag.REQUISITE) return "REQUISITE";
        if (f == LoginModuleControlFlag.SUFFICIENT) return "SUFFICIENT";
        if (f == LoginModuleControlFlag.OPTIONAL) return "OPTIONAL";
        return "?";
    }

    private static AppConfigurationEntry[] jdk(String value, Path file) throws Exception {
        String text = "KafkaClient {\n" + value + "\n};\n";
        Files.write(file, text.getBytes(StandardCharsets.UTF_8));
        Configuration c =
            Configuration.getInstance("JavaLoginConfig", new URIParameter(file.toUri()));
        AppConfigurationEntry[] entries = c.getAppConfigurationEntry("KafkaClient");
        return entries == null ? new AppConfigurationEntry[0] : entries;
    }

    // The tokenizer set-up and entry grammar of Kafka's JaasConfig, restated.
    private static AppConfigurationEntry[] kafka(String value) throws Exception {
        StreamTokenizer t = new StreamTokenizer(new StringReader(value));
        t.resetSyntax();
        t.wordChars(32, 128);
        t.wordChars(128 + 32, 255);
        t.ordinaryChar(';');
        t.ordinaryChar('=');
        t.whitespaceChars(0, ' ');
        t.commentChar('/');
        t.quoteChar('"');
        t.quoteChar('\'');
        t.slashSlashComments(true);
        t.slashStarComments(true);
        List<AppConfigurationEntry> entries = new ArrayList<>();
        while (t.nextToken() != StreamTokenizer.TT_EOF) {
            String module = t.sval;
            if (t.nextToken() == StreamTokenizer.TT_EOF || t.sval == null) {
                throw new IllegalArgumentException("no control flag");
            }
            LoginModuleControlFlag flag;
            switch (t.sval.toUpperCase(Locale.ROOT)) {
                case "REQUIRED": flag = LoginModuleControlFlag.REQUIRED; break;
                case "REQUISITE": flag = LoginModuleControlFlag.REQUISITE; break;
                case "SUFFICIENT": flag = LoginModuleControlFlag.SUFFICIENT; break;
                case "OPTIONAL": flag = LoginModuleControlFlag.OPTIONAL; break;
                default: throw new IllegalArgumentException("bad control flag");
            }
            Map<String, String> options = new HashMap<>();
            while (t.nextToken() != StreamTokenizer.TT_EOF && t.ttype != ';') {
                String key = t.sval;
                if (t.nextToken() != '=' || t.nextToken() == StreamTokenizer.TT_EOF
                        || t.sval == null) {
                    throw new IllegalArgumentException("no value for an option");
                }
                options.put(key, t.sval);
            }
            if (t.ttype != ';') throw new IllegalArgumentException("no terminating ;");
            entries.add(new AppConfigurationEntry(module, flag, options));
        }
        if (entries.isEmpty()) throw new IllegalArgumentException("no login module");
        return entries.toArray(new AppConfigurationEntry[0]);
    }

    private static void report(StringBuilder b, String parser, AppConfigurationEntry[] entries) {
        b.append("N ").append(parser).append(' ').append(entries.length).append('\n');
        for (AppConfigurationEntry e : entries) {
            b.append("M ").append(parser).append(' ').append(hex(e.getLoginModuleName()))
             .append(' ').append(flagName(e.getControlFlag())).append('\n');
            for (Map.Entry<String, ?> o : new TreeMap<>(e.getOptions()).entrySet()) {
                b.append("O ").append(parser).append(' ').append(hex(o.getKey())).append(' ')
                 .append(hex(String.valueOf(o.getValue()))).append('\n');
            }
        }
    }

    private static void error(StringBuilder b, String parser, Exception e) {
        String text = e.getClass().getName() + ": " + e.getMessage();
        b.append("E ").append(parser).append(' ').append(hex(text)).append('\n');
    }

    // args: a scratch directory, then the .properties files.
    // Per file: "--", "P <key> <value>" per property, and for a file with
    // sasl.jaas.config, per parser either "N <parser> <count>" followed by "M"
    // (module, flag) and "O" (option) lines, or "E <parser> <error>". Text is
    // hex UTF-8 ("-" for empty).
    public static void main(String[] args) throws Exception {
        Security.setProperty("policy.expandProperties", "false");
        Path scratch = Path.of(args[0]);
        PrintStream out = new PrintStream(new BufferedOutputStream(System.out, 1 << 16), false);
        for (int i = 1; i < args.length; i++) {
            Properties p = new Properties();
            try (InputStream in = new FileInputStream(args[i])) { p.load(in); }
            StringBuilder b = new StringBuilder("--\n");
            for (String k : new TreeSet<>(p.stringPropertyNames())) {
                b.append("P ").append(hex(k)).append(' ').append(hex(p.getProperty(k)));
                b.append('\n');
            }
            String jaas = p.getProperty("sasl.jaas.config");
            if (jaas != null) {
                try {
                    report(b, "jdk", jdk(jaas, scratch.resolve("jaas-" + i + ".conf")));
                } catch (Exception e) {
                    error(b, "jdk", e);
                }
                try {
                    report(b, "kafka", kafka(jaas));
                } catch (Exception e) {
                    error(b, "kafka", e);
                }
            }
            out.print(b);
        }
        out.flush();
    }
}
"""

PARSERS = ("jdk", "kafka")


@dataclass(frozen=True)
class JaasEntry:
    """One login module entry as a parser read it."""

    module: str
    flag: str
    options: dict[str, str]


@dataclass
class ClientView:
    """What a Kafka client sees in one file: its properties, and per JAAS parser
    either the entries it read from ``sasl.jaas.config`` or its error text."""

    properties: dict[str, str] = field(default_factory=dict)
    jaas: dict[str, list[JaasEntry] | str] = field(default_factory=dict)


def _text(token: str) -> str:
    return "" if token == "-" else bytes.fromhex(token).decode()


class JaasReader:
    def __init__(self, classdir: Path, scratch: Path) -> None:
        self.classdir = classdir
        self.scratch = scratch

    def load_many(self, paths: Sequence[Path]) -> list[ClientView]:
        """What the client sees in each file, in order, with one JVM."""
        if not paths:
            return []
        out = subprocess.run(
            [
                "java",
                *QUICK_JVM_FLAGS,
                "-cp",
                str(self.classdir),
                "ReadJaas",
                str(self.scratch),
                *map(str, paths),
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        ).stdout
        views: list[ClientView] = []
        for line in out.splitlines():
            kind, *rest = line.split(" ")
            if kind == "--":
                views.append(ClientView())
            elif kind == "P":
                views[-1].properties[_text(rest[0])] = _text(rest[1])
            elif kind == "N":
                views[-1].jaas[rest[0]] = []
            elif kind == "M":
                entries = views[-1].jaas[rest[0]]
                assert isinstance(entries, list)
                entries.append(JaasEntry(_text(rest[1]), rest[2], {}))
            elif kind == "O":
                entries = views[-1].jaas[rest[0]]
                assert isinstance(entries, list)
                entries[-1].options[_text(rest[1])] = _text(rest[2])
            elif kind == "E":
                views[-1].jaas[rest[0]] = _text(rest[1])
            else:
                raise AssertionError(f"unexpected line from java: {line[:80]!r}")
        assert len(views) == len(paths), f"java read {len(views)} of {len(paths)} files"
        return views


def compile_jaas_reader(workdir: Path) -> JaasReader:
    """Compile the reader into ``workdir`` (skips without a JDK, fails under CI)."""
    require("javac", "java", fix="install a JDK")
    (workdir / "ReadJaas.java").write_text(JAVA_SOURCE)
    subprocess.run(["javac", "ReadJaas.java"], cwd=workdir, check=True, timeout=120)
    scratch = workdir / "scratch"
    scratch.mkdir()
    return JaasReader(workdir, scratch)
