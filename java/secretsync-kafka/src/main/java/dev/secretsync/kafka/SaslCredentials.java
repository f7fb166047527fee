package dev.secretsync.kafka;

import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import javax.security.auth.login.AppConfigurationEntry;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.config.types.Password;
import org.apache.kafka.common.security.JaasContext;

/**
 * A SASL username and password (PLAIN or SCRAM), read from a file the way secretsync writes
 * it: a whole {@code sasl.jaas.config} line, parsed with Kafka's own JAAS parser, or else
 * {@code username} and {@code password} keys. {@link #toString()} shows no value.
 */
final class SaslCredentials {
    static final String JAAS_KEY = SaslConfigs.SASL_JAAS_CONFIG;
    static final String USERNAME_KEY = "username";
    static final String PASSWORD_KEY = "password";
    // ScramLoginModule's option for delegation tokens, sent as a SCRAM extension
    static final String TOKEN_AUTH_OPTION = "tokenauth";

    final String username;
    final String password;
    final boolean tokenAuth;

    private SaslCredentials(String username, String password, boolean tokenAuth) {
        this.username = username;
        this.password = password;
        this.tokenAuth = tokenAuth;
    }

    /** From a file's properties: {@code sasl.jaas.config} if present, else the two keys. */
    static SaslCredentials fromProperties(Properties props) throws InvalidCredentialsException {
        String jaas = props.getProperty(JAAS_KEY);
        if (jaas != null) {
            return fromJaas(jaas);
        }
        String username = props.getProperty(USERNAME_KEY);
        String password = props.getProperty(PASSWORD_KEY);
        if (username == null && password == null) {
            throw new InvalidCredentialsException(
                    "no " + JAAS_KEY + " key, and no " + USERNAME_KEY + " and " + PASSWORD_KEY + " keys");
        }
        return of(username, password, false, "the " + USERNAME_KEY + "/" + PASSWORD_KEY + " keys");
    }

    /**
     * From a {@code sasl.jaas.config} value, parsed exactly as a client parses its own (Kafka's
     * {@link JaasContext#loadClientContext}): one login module, Kafka's quoting rules.
     */
    static SaslCredentials fromJaas(String jaas) throws InvalidCredentialsException {
        List<AppConfigurationEntry> entries;
        try {
            entries = JaasContext.loadClientContext(
                    Collections.singletonMap(JAAS_KEY, new Password(jaas))).configurationEntries();
        } catch (IllegalArgumentException e) {
            // the parser's message can quote the value: never passed on
            throw new InvalidCredentialsException(JAAS_KEY + " cannot be parsed (half-written?)");
        }
        return fromEntries(entries, JAAS_KEY);
    }

    /** From the client's own JAAS entries ({@code sasl.jaas.config} as the client was built). */
    static SaslCredentials fromEntries(List<AppConfigurationEntry> entries) throws InvalidCredentialsException {
        return fromEntries(entries, "the client's " + JAAS_KEY);
    }

    private static SaslCredentials fromEntries(List<AppConfigurationEntry> entries, String where)
            throws InvalidCredentialsException {
        if (entries == null || entries.size() != 1) {
            throw new InvalidCredentialsException(where + " must hold exactly one login module");
        }
        return fromOptions(entries.get(0).getOptions(), where);
    }

    private static SaslCredentials fromOptions(Map<String, ?> options, String where)
            throws InvalidCredentialsException {
        Object username = options.get(USERNAME_KEY);
        Object password = options.get(PASSWORD_KEY);
        boolean tokenAuth = "true".equalsIgnoreCase(String.valueOf(options.get(TOKEN_AUTH_OPTION)));
        return of(
                username instanceof String ? (String) username : null,
                password instanceof String ? (String) password : null,
                tokenAuth,
                where);
    }

    private static SaslCredentials of(String username, String password, boolean tokenAuth, String where)
            throws InvalidCredentialsException {
        if (username == null || username.isEmpty()) {
            throw new InvalidCredentialsException(where + ": no " + USERNAME_KEY);
        }
        if (password == null || password.isEmpty()) {
            throw new InvalidCredentialsException(where + ": no " + PASSWORD_KEY);
        }
        return new SaslCredentials(username, password, tokenAuth);
    }

    @Override
    public boolean equals(Object other) {
        if (!(other instanceof SaslCredentials)) {
            return false;
        }
        SaslCredentials that = (SaslCredentials) other;
        return tokenAuth == that.tokenAuth && username.equals(that.username) && password.equals(that.password);
    }

    @Override
    public int hashCode() {
        return Objects.hash(username, password, tokenAuth);
    }

    @Override
    public String toString() {
        return "SaslCredentials[values hidden]";
    }
}
