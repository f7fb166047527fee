package dev.secretsync.kafka;

import io.confluent.kafka.schemaregistry.client.security.basicauth.BasicAuthCredentialProvider;
import java.net.URL;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.common.config.ConfigException;

/**
 * A Schema Registry {@code BasicAuthCredentialProvider} that returns the
 * {@code basic.auth.user.info} of the file secretsync keeps current, for every request, so a
 * rotated Schema Registry key is used from the next request on.
 *
 * <pre>
 * basic.auth.credentials.source=SECRETSYNC_FILE
 * secretsync.basic.auth.file=/etc/kafka/schema-registry.properties
 * </pre>
 *
 * <p>The client finds it with {@link java.util.ServiceLoader} by its {@link #alias()} (this
 * jar's {@code META-INF/services} entry). The file is re-read only when it changed (inode,
 * size, modification time); when it is missing, half-written or has no valid
 * {@code user:password}, the last good value stays in use and the log says so once (never a
 * value). Until the file has been read, the configuration's own {@code basic.auth.user.info}
 * is used, if any; with neither, {@link #configure} fails.
 *
 * <p>Confluent's client keeps one provider instance per alias for the whole JVM and
 * configures it again for each client: every client with this alias in one JVM therefore
 * uses one file (the last configured; a different one is logged).
 */
public class FileBasicAuthCredentialProvider implements BasicAuthCredentialProvider {

    /** The value of {@code basic.auth.credentials.source} that selects this provider. */
    public static final String ALIAS = "SECRETSYNC_FILE";

    /** The configuration key naming the file (required). */
    public static final String FILE_CONFIG = "secretsync.basic.auth.file";

    static final String USER_INFO_KEY = "basic.auth.user.info";
    private static final String SR_PREFIX = "schema.registry.";

    private final Reporter reporter;
    private volatile WatchedFile<String> file;

    /** The instance the {@link java.util.ServiceLoader} creates. */
    public FileBasicAuthCredentialProvider() {
        this(Reporter.LOG);
    }

    FileBasicAuthCredentialProvider(Reporter reporter) {
        this.reporter = reporter;
    }

    @Override
    public String alias() {
        return ALIAS;
    }

    @Override
    public synchronized void configure(Map<String, ?> configs) {
        Object value = configs.get(FILE_CONFIG);
        if (value == null) {
            value = configs.get(SR_PREFIX + FILE_CONFIG); // as a serializer's setting
        }
        if (value == null || value.toString().trim().isEmpty()) {
            throw new ConfigException(FILE_CONFIG + " is not set: it must name the file secretsync writes"
                    + " basic.auth.user.info to (basic.auth.credentials.source=" + ALIAS + ")");
        }
        Path path = Paths.get(value.toString().trim());
        WatchedFile<String> previous = file;
        if (previous != null && previous.path().equals(path)) {
            return; // another client of this JVM, the same file: keep what was read
        }
        if (previous != null) {
            reporter.problem(previous.path(), "Schema Registry credentials",
                    "replaced by " + path + ": every client using " + ALIAS + " in one JVM uses one file", true);
        }
        String initial = null;
        Object own = configs.get(USER_INFO_KEY);
        if (own instanceof String && validUserInfo((String) own)) {
            initial = (String) own;
        }
        WatchedFile<String> watched = new WatchedFile<>(
                path, "Schema Registry credentials", FileBasicAuthCredentialProvider::parse, reporter, initial);
        try {
            watched.current();
        } catch (NoCredentialsException e) {
            throw new ConfigException(e.getMessage());
        }
        file = watched;
    }

    /** {@code user:password} from the file as it is now (or as it last was usable). */
    @Override
    public String getUserInfo(URL url) {
        WatchedFile<String> watched = file;
        if (watched == null) {
            throw new IllegalStateException(getClass().getSimpleName() + " used before configure()");
        }
        try {
            return watched.current();
        } catch (NoCredentialsException e) {
            // configure() succeeded, so credentials were read once and are kept: unreachable
            throw new IllegalStateException(e.getMessage(), e);
        }
    }

    static String parse(Properties props) throws InvalidCredentialsException {
        String userInfo = props.getProperty(USER_INFO_KEY);
        if (userInfo == null) {
            throw new InvalidCredentialsException("no " + USER_INFO_KEY + " key");
        }
        if (!validUserInfo(userInfo)) {
            throw new InvalidCredentialsException(USER_INFO_KEY + " is not user:password");
        }
        return userInfo;
    }

    private static boolean validUserInfo(String userInfo) {
        int colon = userInfo.indexOf(':');
        return colon > 0 && colon < userInfo.length() - 1;
    }
}
