package dev.secretsync.testkit.broker;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.MessageDigest;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The broker's set of valid API keys, the way Confluent Cloud holds them: each key has a
 * secret and belongs to a service account, several keys can be valid for one account at
 * once. The test changes the set at run time by rewriting the file named by the system
 * property {@code secretsync.testkit.keys} (one {@code key secret service-account} per line,
 * replaced atomically); it is re-read whenever its inode, size or mtime changed.
 */
public final class ApiKeys {
    public static final String FILE_PROPERTY = "secretsync.testkit.keys";
    /** Where {@link #recordFirstAuthentication} appends ({@code <epoch millis> <key or user>}). */
    public static final String AUTH_LOG_PROPERTY = "secretsync.testkit.auth.log";

    private static final class Entry {
        final byte[] secret;
        final String serviceAccount;

        Entry(byte[] secret, String serviceAccount) {
            this.secret = secret;
            this.serviceAccount = serviceAccount;
        }
    }

    private static final Set<String> AUTHENTICATED = new HashSet<>();
    private static Object identity;
    private static Map<String, Entry> keys = Collections.emptyMap();

    private ApiKeys() {
    }

    private static synchronized Map<String, Entry> current() {
        Path path = Paths.get(System.getProperty(FILE_PROPERTY, "api-keys.txt"));
        try {
            BasicFileAttributes attrs = Files.readAttributes(path, BasicFileAttributes.class);
            List<Object> now = List.of(String.valueOf(attrs.fileKey()), attrs.size(), attrs.lastModifiedTime());
            if (!now.equals(identity)) {
                Map<String, Entry> parsed = new HashMap<>();
                for (String line : Files.readAllLines(path, StandardCharsets.UTF_8)) {
                    String[] parts = line.trim().split(" ");
                    if (parts.length == 3) {
                        parsed.put(parts[0], new Entry(parts[1].getBytes(StandardCharsets.UTF_8), parts[2]));
                    }
                }
                keys = parsed;
                identity = now;
            }
        } catch (IOException e) {
            keys = Collections.emptyMap(); // no file: no valid key
            identity = null;
        }
        return keys;
    }

    /** Whether {@code key} is valid now with {@code secret}. */
    public static boolean valid(String key, char[] secret) {
        Entry entry = current().get(key);
        return entry != null
                && MessageDigest.isEqual(entry.secret, new String(secret).getBytes(StandardCharsets.UTF_8));
    }

    /** The service account {@code key} belongs to, or null for an unknown key. */
    public static String serviceAccount(String key) {
        Entry entry = current().get(key);
        return entry == null ? null : entry.serviceAccount;
    }

    /**
     * Appends when {@code id} (an API key or a SCRAM user) authenticated for the first time
     * (the benchmark's "first successful authentication with the new key"); later ones are
     * not recorded.
     */
    public static synchronized void recordFirstAuthentication(String id) {
        String log = System.getProperty(AUTH_LOG_PROPERTY);
        if (log == null || !AUTHENTICATED.add(id)) {
            return;
        }
        try {
            Files.write(Paths.get(log), (System.currentTimeMillis() + " " + id + "\n").getBytes(StandardCharsets.UTF_8),
                    StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        } catch (IOException e) {
            // the record is for measurements only; the authentication stands
        }
    }
}
