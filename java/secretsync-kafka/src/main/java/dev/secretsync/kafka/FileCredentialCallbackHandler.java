package dev.secretsync.kafka;

import java.io.IOException;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import javax.security.auth.callback.Callback;
import javax.security.auth.callback.NameCallback;
import javax.security.auth.callback.PasswordCallback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;
import javax.security.sasl.RealmCallback;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.security.auth.AuthenticateCallbackHandler;
import org.apache.kafka.common.security.scram.ScramExtensionsCallback;

/**
 * A Kafka client SASL callback handler (KIP-86) for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512
 * that reads the username and password from the file secretsync keeps current, at every
 * authentication: every new connection, and every re-authentication of an open one when the
 * broker sets {@code connections.max.reauth.ms} (KIP-368). A rotated key therefore reaches a
 * running producer, consumer or admin client without rebuilding it.
 *
 * <pre>
 * sasl.client.callback.handler.class=dev.secretsync.kafka.FileCredentialCallbackHandler
 * secretsync.credentials.file=/etc/kafka/client.properties
 * </pre>
 *
 * <p>The file is read as secretsync writes it: its {@code sasl.jaas.config} line, parsed with
 * Kafka's own JAAS parser, or else its {@code username} and {@code password} keys. It is
 * re-parsed only when it changed (inode, size, modification time). When it is missing,
 * half-written or holds nothing usable, the last good credentials stay in use and the
 * application's log says so once (never a value). Until the file has been read once, the
 * credentials of the client's own {@code sasl.jaas.config} are used, if it has any; with
 * neither, building the client fails.
 *
 * <p>SCRAM asks for the name and, one round trip later, for the password, in two calls. The
 * password is taken from the same reading of the file as the name, unless the file now holds
 * a new password for that same name (Amazon MSK changes one user's password), in which case
 * the new password is sent. Thread-safe: one instance serves all of a client's connections.
 */
public class FileCredentialCallbackHandler implements AuthenticateCallbackHandler {

    /** The client property naming the file (required). */
    public static final String FILE_CONFIG = "secretsync.credentials.file";

    static final List<String> MECHANISMS = Collections.unmodifiableList(
            Arrays.asList("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"));

    // a SCRAM exchange asks for the password one round trip after the name; past this, the
    // name handed out last belongs to an exchange that was abandoned
    private static final long PAIRING_WINDOW_NANOS = 60_000_000_000L;

    /** The credentials that answered a name, and when. */
    private static final class Issued {
        final SaslCredentials credentials;
        final long atNanos;

        Issued(SaslCredentials credentials, long atNanos) {
            this.credentials = credentials;
            this.atNanos = atNanos;
        }
    }

    private final Reporter reporter;
    private volatile WatchedFile<SaslCredentials> file;
    private volatile Issued lastIssued;

    /** The instance Kafka creates from {@code sasl.client.callback.handler.class}. */
    public FileCredentialCallbackHandler() {
        this(Reporter.LOG);
    }

    FileCredentialCallbackHandler(Reporter reporter) {
        this.reporter = reporter;
    }

    @Override
    public void configure(Map<String, ?> configs, String saslMechanism, List<AppConfigurationEntry> jaasConfigEntries) {
        if (!MECHANISMS.contains(saslMechanism)) {
            throw new ConfigException(getClass().getName() + " supports the SASL mechanisms " + MECHANISMS
                    + ", not " + saslMechanism);
        }
        Object path = configs.get(FILE_CONFIG);
        if (path == null || path.toString().trim().isEmpty()) {
            throw new ConfigException(FILE_CONFIG + " is not set: it must name the file secretsync writes"
                    + " the credentials to (sasl.client.callback.handler.class=" + getClass().getName() + ")");
        }
        SaslCredentials initial;
        try {
            initial = SaslCredentials.fromEntries(jaasConfigEntries);
        } catch (InvalidCredentialsException e) {
            initial = null; // e.g. "PlainLoginModule required;": the file must give them
        }
        WatchedFile<SaslCredentials> watched = new WatchedFile<>(
                Paths.get(path.toString().trim()), "SASL credentials", SaslCredentials::fromProperties,
                reporter, initial);
        try {
            watched.current();
        } catch (NoCredentialsException e) {
            throw new ConfigException(e.getMessage());
        }
        this.file = watched;
    }

    @Override
    public void handle(Callback[] callbacks) throws IOException, UnsupportedCallbackException {
        WatchedFile<SaslCredentials> watched = file;
        if (watched == null) {
            throw new IllegalStateException(getClass().getSimpleName() + " used before configure()");
        }
        SaslCredentials credentials = choose(watched, callbacks);
        for (Callback callback : callbacks) {
            if (callback instanceof NameCallback) {
                ((NameCallback) callback).setName(credentials.username);
            } else if (callback instanceof PasswordCallback) {
                ((PasswordCallback) callback).setPassword(credentials.password.toCharArray());
            } else if (callback instanceof ScramExtensionsCallback) {
                if (credentials.tokenAuth) {
                    ((ScramExtensionsCallback) callback).extensions(
                            Collections.singletonMap(SaslCredentials.TOKEN_AUTH_OPTION, "true"));
                }
            } else if (callback instanceof RealmCallback) {
                RealmCallback realm = (RealmCallback) callback;
                realm.setText(realm.getDefaultText());
            } else {
                throw new UnsupportedCallbackException(callback, "not supported by " + getClass().getName());
            }
        }
    }

    /**
     * One reading of the file per call. A call that asks for the name starts an exchange and
     * takes the current credentials; a later call of the same exchange (SCRAM's password,
     * its extensions) takes those that answered the name, unless the current ones have the
     * same name.
     */
    private SaslCredentials choose(WatchedFile<SaslCredentials> watched, Callback[] callbacks)
            throws NoCredentialsException {
        SaslCredentials current = watched.current();
        long now = System.nanoTime();
        for (Callback callback : callbacks) {
            if (callback instanceof NameCallback) {
                lastIssued = new Issued(current, now);
                return current;
            }
        }
        Issued issued = lastIssued;
        if (issued == null
                || now - issued.atNanos > PAIRING_WINDOW_NANOS
                || issued.credentials.username.equals(current.username)) {
            return current;
        }
        return issued.credentials;
    }

    @Override
    public void close() {
        // nothing held: the file is opened only while it is read
    }
}
