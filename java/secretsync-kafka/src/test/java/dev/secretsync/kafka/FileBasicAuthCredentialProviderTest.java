package dev.secretsync.kafka;

import static dev.secretsync.kafka.Files2.line;
import static dev.secretsync.kafka.Files2.replace;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.confluent.kafka.schemaregistry.client.security.basicauth.BasicAuthCredentialProvider;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.ServiceLoader;
import org.apache.kafka.common.config.ConfigException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FileBasicAuthCredentialProviderTest {

    @TempDir
    Path dir;

    final RecordingReporter reporter = new RecordingReporter();

    Path file() {
        return dir.resolve("schema-registry.properties");
    }

    Map<String, Object> configs() {
        Map<String, Object> configs = new HashMap<>();
        configs.put("basic.auth.credentials.source", FileBasicAuthCredentialProvider.ALIAS);
        configs.put(FileBasicAuthCredentialProvider.FILE_CONFIG, file().toString());
        return configs;
    }

    @Test
    void theServiceLoaderFindsItByItsAlias() {
        // what Confluent's BasicAuthCredentialProviderFactory does
        BasicAuthCredentialProvider found = null;
        for (BasicAuthCredentialProvider p : ServiceLoader.load(BasicAuthCredentialProvider.class)) {
            if (p.alias().equals("SECRETSYNC_FILE")) {
                found = p;
            }
        }
        assertNotNull(found);
        assertEquals(FileBasicAuthCredentialProvider.class, found.getClass());
    }

    @Test
    void eachRequestGetsTheUserInfoOfTheFileAsItIsNow() throws Exception {
        replace(file(), line("basic.auth.user.info", "SRKEY1:CANARY-sr-b41d2e") + line("schema.registry.url", "http://x"));
        FileBasicAuthCredentialProvider p = new FileBasicAuthCredentialProvider(reporter);
        p.configure(configs());
        URL url = new URL("http://127.0.0.1:1/subjects");
        assertEquals("SRKEY1:CANARY-sr-b41d2e", p.getUserInfo(url));
        replace(file(), line("basic.auth.user.info", "SRKEY2:sr:secret:with:colons"));
        assertEquals("SRKEY2:sr:secret:with:colons", p.getUserInfo(url));
        Files.delete(file());
        assertEquals("SRKEY2:sr:secret:with:colons", p.getUserInfo(url));
        replace(file(), line("basic.auth.user.info", "no-colon"));
        assertEquals("SRKEY2:sr:secret:with:colons", p.getUserInfo(url));
        assertEquals(2, reporter.count("problem"), reporter.all());
        String all = reporter.all();
        assertFalse(all.contains("CANARY") || all.contains("secret") || all.contains("SRKEY") || all.contains("no-colon"), all);
    }

    @Test
    void startsFromTheConfigsOwnUserInfoWhenTheFileIsMissing() throws Exception {
        Map<String, Object> configs = configs();
        configs.put("basic.auth.user.info", "SRKEY0:secret-0");
        FileBasicAuthCredentialProvider p = new FileBasicAuthCredentialProvider(reporter);
        p.configure(configs);
        assertEquals("SRKEY0:secret-0", p.getUserInfo(null));
        replace(file(), line("basic.auth.user.info", "SRKEY1:secret-1"));
        assertEquals("SRKEY1:secret-1", p.getUserInfo(null));
    }

    @Test
    void aSerializersPrefixedSettingIsAccepted() throws Exception {
        replace(file(), line("basic.auth.user.info", "SRKEY1:secret-1"));
        Map<String, Object> configs = new HashMap<>();
        configs.put("schema.registry." + FileBasicAuthCredentialProvider.FILE_CONFIG, file().toString());
        FileBasicAuthCredentialProvider p = new FileBasicAuthCredentialProvider(reporter);
        p.configure(configs);
        assertEquals("SRKEY1:secret-1", p.getUserInfo(null));
    }

    @Test
    void withoutAFileSettingOrAnyCredentialsConfigureFails() {
        FileBasicAuthCredentialProvider p = new FileBasicAuthCredentialProvider(reporter);
        ConfigException unset = assertThrows(ConfigException.class, () -> p.configure(new HashMap<>()));
        assertTrue(unset.getMessage().contains(FileBasicAuthCredentialProvider.FILE_CONFIG), unset.getMessage());
        ConfigException missing = assertThrows(ConfigException.class, () -> p.configure(configs()));
        assertTrue(missing.getMessage().contains(file().toString()), missing.getMessage());
    }

    @Test
    void oneInstancePerJvmIsConfiguredAgainByEachClient() throws Exception {
        replace(file(), line("basic.auth.user.info", "SRKEY1:secret-1"));
        Path other = dir.resolve("other.properties");
        replace(other, line("basic.auth.user.info", "SRKEY9:secret-9"));
        FileBasicAuthCredentialProvider p = new FileBasicAuthCredentialProvider(reporter);
        p.configure(configs());
        p.configure(configs()); // a second client, same file: nothing to say
        assertEquals(0, reporter.count("problem"));
        Map<String, Object> second = configs();
        second.put(FileBasicAuthCredentialProvider.FILE_CONFIG, other.toString());
        p.configure(second);
        assertEquals("SRKEY9:secret-9", p.getUserInfo(null));
        assertEquals(1, reporter.count("problem"), reporter.all());
        assertTrue(reporter.all().contains("one file"), reporter.all());
    }
}
