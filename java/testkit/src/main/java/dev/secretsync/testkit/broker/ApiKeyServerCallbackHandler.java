package dev.secretsync.testkit.broker;

import java.util.List;
import java.util.Map;
import javax.security.auth.callback.Callback;
import javax.security.auth.callback.NameCallback;
import javax.security.auth.callback.UnsupportedCallbackException;
import javax.security.auth.login.AppConfigurationEntry;
import org.apache.kafka.common.security.auth.AuthenticateCallbackHandler;
import org.apache.kafka.common.security.plain.PlainAuthenticateCallback;

/**
 * The broker's SASL/PLAIN server callback handler
 * ({@code listener.name.client.plain.sasl.server.callback.handler.class}): a username is an
 * API key, valid with its secret while {@link ApiKeys} lists it.
 */
public class ApiKeyServerCallbackHandler implements AuthenticateCallbackHandler {

    @Override
    public void configure(Map<String, ?> configs, String mechanism, List<AppConfigurationEntry> entries) {
    }

    @Override
    public void handle(Callback[] callbacks) throws UnsupportedCallbackException {
        String key = null;
        for (Callback callback : callbacks) {
            if (callback instanceof NameCallback) {
                key = ((NameCallback) callback).getDefaultName();
            } else if (callback instanceof PlainAuthenticateCallback) {
                PlainAuthenticateCallback plain = (PlainAuthenticateCallback) callback;
                plain.authenticated(key != null && ApiKeys.valid(key, plain.password()));
            } else {
                throw new UnsupportedCallbackException(callback);
            }
        }
    }

    @Override
    public void close() {
    }
}
