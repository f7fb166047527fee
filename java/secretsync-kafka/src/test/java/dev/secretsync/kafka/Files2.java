package dev.secretsync.kafka;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/** Writes test files the way secretsync does: a temp file renamed over the old one. */
final class Files2 {
    private Files2() {
    }

    static void replace(Path path, String content) throws IOException {
        Path tmp = path.resolveSibling("." + path.getFileName() + ".tmp");
        Files.write(tmp, content.getBytes(StandardCharsets.ISO_8859_1));
        Files.move(tmp, path, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    /** A {@code .properties} line as secretsync escapes it ({@code \}, {@code =}, {@code :}). */
    static String line(String key, String value) {
        StringBuilder b = new StringBuilder(key).append('=');
        for (char c : value.toCharArray()) {
            if (c == '\\' || c == '=' || c == ':' || c == '#' || c == '!') {
                b.append('\\');
            }
            if (c > 0x7e) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('\n').toString();
    }

    /** A JAAS line with Kafka's quoting: {@code \} and {@code "} get a backslash. */
    static String jaas(String module, String username, String password) {
        return module + " required username=\"" + quote(username) + "\" password=\"" + quote(password) + "\";";
    }

    static String plain(String username, String password) {
        return line("sasl.jaas.config", jaas("org.apache.kafka.common.security.plain.PlainLoginModule", username, password));
    }

    static String scram(String username, String password) {
        return line("sasl.jaas.config", jaas("org.apache.kafka.common.security.scram.ScramLoginModule", username, password));
    }

    private static String quote(String s) {
        return s.replace("\\", "\\\\").replace("\"", "\\\"");
    }
}
