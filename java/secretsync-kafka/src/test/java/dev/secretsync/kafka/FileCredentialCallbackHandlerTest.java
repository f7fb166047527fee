package dev.secretsync.kafka;

import static dev.secretsync.kafka.Files2.plain;
import static dev.secretsync.kafka.Files2.replace;
import static dev.secretsync.kafka.Files2.scram;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import javax.security.auth.callback.Callback;
import javax.security.auth.callback.NameCallback;
import javax.security.auth.callback.PasswordCallback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;
import javax.security.auth.login.AppConfigurationEntry.LoginModuleControlFlag;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.security.scram.ScramExtensionsCallback;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FileCredentialCallbackHandlerTest {

    // hostile passwords: JAAS quoting, .properties escapes, non-ASCII, astral characters
    static final String[] PASSWORDS = {
        "CANARY-pw-7f3a9c\"\\quote", "a;b=c{d}e f", "pässwörd-\u00e9\u4e2d", "emoji-\ud83d\ude00-x", "tab\tin:it#!",
    };

    @TempDir
    Path dir;

    final RecordingReporter reporter = new RecordingReporter();

    Path file() {
        return dir.resolve("client.properties");
    }

    FileCredentialCallbackHandler handler(String mechanism) {
        return handler(mechanism, Collections.emptyList());
    }

    FileCredentialCallbackHandler handler(String mechanism, List<AppConfigurationEntry> jaas) {
        FileCredentialCallbackHandler h = new FileCredentialCallbackHandler(reporter);
        Map<String, Object> configs = new HashMap<>();
        configs.put(FileCredentialCallbackHandler.FILE_CONFIG, file().toString());
        h.configure(configs, mechanism, jaas);
        return h;
    }

    /** What PLAIN does (the JDK's PlainClient): name and password in one call. */
    static String[] plainExchange(FileCredentialCallbackHandler h) throws Exception {
        NameCallback name = new NameCallback("Name:");
        PasswordCallback password = new PasswordCallback("Password:", false);
        h.handle(new Callback[] {name, password});
        return new String[] {name.getName(), new String(password.getPassword())};
    }

    /** SCRAM's first step (Kafka's ScramSaslClient): the name, then the extensions. */
    static String scramName(FileCredentialCallbackHandler h) throws Exception {
        NameCallback name = new NameCallback("Name:");
        h.handle(new Callback[] {name});
        h.handle(new Callback[] {new ScramExtensionsCallback()});
        return name.getName();
    }

    /** SCRAM's second step, one round trip later: the password alone. */
    static String scramPassword(FileCredentialCallbackHandler h) throws Exception {
        PasswordCallback password = new PasswordCallback("Password:", false);
        h.handle(new Callback[] {password});
        return new String(password.getPassword());
    }

    static List<AppConfigurationEntry> jaasEntry(String username, String password) {
        Map<String, String> options = new HashMap<>();
        options.put("username", username);
        options.put("password", password);
        return Collections.singletonList(new AppConfigurationEntry(
                "org.apache.kafka.common.security.plain.PlainLoginModule", LoginModuleControlFlag.REQUIRED, options));
    }

    void assertNoValueReported(String... values) {
        String all = reporter.all();
        for (String v : values) {
            assertFalse(all.contains(v), "a report contains a credential value");
        }
    }

    @Test
    void readsTheJaasLineSecretsyncWritesForEveryHostilePassword() throws Exception {
        for (String password : PASSWORDS) {
            replace(file(), plain("KEY1", password) + "bootstrap.servers=broker\\:9092\n");
            assertArrayEquals(new String[] {"KEY1", password}, plainExchange(handler("PLAIN")));
        }
        assertNoValueReported(PASSWORDS);
    }

    @Test
    void readsUsernameAndPasswordKeysWhenThereIsNoJaasLine() throws Exception {
        replace(file(), Files2.line("username", "msk-user") + Files2.line("password", PASSWORDS[0]));
        FileCredentialCallbackHandler h = handler("SCRAM-SHA-512");
        assertEquals("msk-user", scramName(h));
        assertEquals(PASSWORDS[0], scramPassword(h));
    }

    @Test
    void aRewrittenFileGivesTheNewKeyAtTheNextAuthentication() throws Exception {
        replace(file(), plain("KEY1", "secret-1"));
        FileCredentialCallbackHandler h = handler("PLAIN");
        assertArrayEquals(new String[] {"KEY1", "secret-1"}, plainExchange(h));
        replace(file(), plain("KEY2", "secret-2"));
        assertArrayEquals(new String[] {"KEY2", "secret-2"}, plainExchange(h));
        assertEquals(2, reporter.count("reloaded")); // the first reading, then the new key
        assertNoValueReported("secret-1", "secret-2", "KEY1", "KEY2");
    }

    @Test
    void anUnchangedFileIsNotParsedAgain() throws Exception {
        replace(file(), plain("KEY1", "secret-1"));
        FileCredentialCallbackHandler h = handler("PLAIN");
        WatchedFile<SaslCredentials> watched = new WatchedFile<>(
                file(), "SASL credentials", SaslCredentials::fromProperties, reporter, null);
        for (int i = 0; i < 100; i++) {
            watched.current();
            plainExchange(h);
        }
        assertEquals(1, watched.parses());
        replace(file(), plain("KEY1", "secret-1")); // same content, new inode: read again
        watched.current();
        assertEquals(2, watched.parses());
    }

    @Test
    void aMissingFileKeepsTheLastGoodCredentialsAndSaysSoOnce() throws Exception {
        replace(file(), plain("KEY1", "secret-1"));
        FileCredentialCallbackHandler h = handler("PLAIN");
        Files.delete(file());
        for (int i = 0; i < 5; i++) {
            assertArrayEquals(new String[] {"KEY1", "secret-1"}, plainExchange(h));
        }
        assertEquals(1, reporter.count("problem"));
        assertTrue(reporter.all().contains("(missing) keeping=true"), reporter.all());
        replace(file(), plain("KEY2", "secret-2"));
        assertArrayEquals(new String[] {"KEY2", "secret-2"}, plainExchange(h));
        assertEquals(1, reporter.count("recovered"));
        assertNoValueReported("secret-1", "secret-2", "KEY1", "KEY2");
    }

    @Test
    void aHalfWrittenOrUnparsableFileKeepsTheLastGoodCredentials() throws Exception {
        replace(file(), plain("KEY1", PASSWORDS[0]));
        FileCredentialCallbackHandler h = handler("PLAIN");
        String whole = plain("KEY2", "secret-2");
        String[] bad = {
            whole.substring(0, whole.indexOf("secret-2") + 3), // cut inside the quotes
            "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required;\n", // no creds
            "sasl.jaas.config=a b required; c d required;\n", // two login modules
            "bootstrap.servers=x\n", // no credentials at all
            "sasl.jaas.config=\\uZZZZ\n", // not .properties
            "",
        };
        for (String content : bad) {
            replace(file(), content);
            assertArrayEquals(new String[] {"KEY1", PASSWORDS[0]}, plainExchange(h));
            assertArrayEquals(new String[] {"KEY1", PASSWORDS[0]}, plainExchange(h));
        }
        // one report per distinct problem, never one per authentication
        assertTrue(reporter.count("problem") <= bad.length, reporter.all());
        assertTrue(reporter.count("problem") >= 4, reporter.all());
        assertNoValueReported(PASSWORDS[0], "secret-2", "sec", "KEY1", "KEY2");
    }

    @Test
    void scramTakesThePasswordFromTheReadingThatGaveTheName() throws Exception {
        replace(file(), scram("user-a", "password-a"));
        FileCredentialCallbackHandler h = handler("SCRAM-SHA-512");
        assertEquals("user-a", scramName(h));
        // the file changes to another user between the two steps of one exchange
        replace(file(), scram("user-b", "password-b"));
        assertEquals("password-a", scramPassword(h));
        // the next exchange starts with the new reading
        assertEquals("user-b", scramName(h));
        assertEquals("password-b", scramPassword(h));
    }

    @Test
    void scramSendsTheNewPasswordOfTheSameUser() throws Exception {
        // Amazon MSK: one user, its password changed at the broker and then in the file
        replace(file(), scram("msk-user", "old-password"));
        FileCredentialCallbackHandler h = handler("SCRAM-SHA-512");
        assertEquals("msk-user", scramName(h));
        replace(file(), scram("msk-user", "new-password"));
        assertEquals("new-password", scramPassword(h));
    }

    @Test
    void scramTokenAuthIsSentAsAnExtension() throws Exception {
        replace(file(), Files2.line("sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"tok\" password=\"hmac\" tokenauth=\"true\";"));
        FileCredentialCallbackHandler h = handler("SCRAM-SHA-256");
        h.handle(new Callback[] {new NameCallback("Name:")});
        ScramExtensionsCallback ext = new ScramExtensionsCallback();
        h.handle(new Callback[] {ext});
        assertEquals(Collections.singletonMap("tokenauth", "true"), ext.extensions());
    }

    @Test
    void nameAndPasswordAlwaysComeFromOneReadingUnderConcurrentRewrites() throws Exception {
        replace(file(), plain("KEY-0", "secret-0"));
        FileCredentialCallbackHandler h = handler("PLAIN");
        AtomicBoolean stop = new AtomicBoolean();
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<Integer>> readers = new ArrayList<>();
            for (int t = 0; t < 3; t++) {
                readers.add(pool.submit(() -> {
                    int n = 0;
                    while (!stop.get()) {
                        String[] pair = plainExchange(h);
                        // KEY-i always with secret-i, never a mix of two readings
                        assertEquals(pair[0].substring(4), pair[1].substring(7));
                        n++;
                    }
                    return n;
                }));
            }
            Future<?> writer = pool.submit(() -> {
                for (int i = 1; i <= 300; i++) {
                    replace(file(), plain("KEY-" + i, "secret-" + i));
                }
                return null;
            });
            writer.get(60, TimeUnit.SECONDS);
            stop.set(true);
            for (Future<Integer> r : readers) {
                assertTrue(r.get(60, TimeUnit.SECONDS) > 0);
            }
            assertArrayEquals(new String[] {"KEY-300", "secret-300"}, plainExchange(h));
        } finally {
            stop.set(true);
            pool.shutdownNow();
        }
    }

    @Test
    void startsFromTheClientsOwnJaasLineWhenTheFileIsMissing() throws Exception {
        FileCredentialCallbackHandler h = handler("PLAIN", jaasEntry("KEY1", "secret-1"));
        assertArrayEquals(new String[] {"KEY1", "secret-1"}, plainExchange(h));
        assertTrue(reporter.all().contains("(missing) keeping=true"), reporter.all());
        replace(file(), plain("KEY2", "secret-2"));
        assertArrayEquals(new String[] {"KEY2", "secret-2"}, plainExchange(h));
    }

    @Test
    void withNoCredentialsAnywhereBuildingTheClientFailsNamingTheFile() throws IOException {
        Files.write(file(), "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required;\n"
                .getBytes(StandardCharsets.US_ASCII));
        ConfigException e = assertThrows(ConfigException.class, () -> handler("PLAIN"));
        assertTrue(e.getMessage().contains(file().toString()), e.getMessage());
        assertTrue(e.getMessage().contains("no username"), e.getMessage());
    }

    @Test
    void theFilePropertyIsRequired() {
        FileCredentialCallbackHandler h = new FileCredentialCallbackHandler(reporter);
        ConfigException e = assertThrows(ConfigException.class,
                () -> h.configure(new HashMap<>(), "PLAIN", Collections.emptyList()));
        assertTrue(e.getMessage().contains(FileCredentialCallbackHandler.FILE_CONFIG), e.getMessage());
    }

    @Test
    void otherMechanismsAreRefused() throws IOException {
        replace(file(), plain("KEY1", "secret-1"));
        for (String mechanism : new String[] {"GSSAPI", "OAUTHBEARER"}) {
            ConfigException e = assertThrows(ConfigException.class, () -> handler(mechanism));
            assertTrue(e.getMessage().contains(mechanism), e.getMessage());
        }
    }

    @Test
    void unknownCallbacksAreUnsupported() throws Exception {
        replace(file(), plain("KEY1", "secret-1"));
        FileCredentialCallbackHandler h = handler("PLAIN");
        assertThrows(UnsupportedCallbackException.class, () -> h.handle(new Callback[] {new Callback() { }}));
    }

    @Test
    void toStringShowsNoValue() throws Exception {
        String s = SaslCredentials.fromJaas(Files2.jaas(
                "org.apache.kafka.common.security.plain.PlainLoginModule", "KEY1", "secret-1")).toString();
        assertFalse(s.contains("KEY1") || s.contains("secret-1"), s);
    }
}
