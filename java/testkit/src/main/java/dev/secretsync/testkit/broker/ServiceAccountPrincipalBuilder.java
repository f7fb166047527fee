package dev.secretsync.testkit.broker;

import org.apache.kafka.common.security.auth.AuthenticationContext;
import org.apache.kafka.common.security.auth.KafkaPrincipal;
import org.apache.kafka.common.security.auth.KafkaPrincipalBuilder;
import org.apache.kafka.common.security.auth.KafkaPrincipalSerde;
import org.apache.kafka.common.security.auth.SaslAuthenticationContext;
import org.apache.kafka.common.security.authenticator.DefaultKafkaPrincipalBuilder;

/**
 * Confluent Cloud's principal model ({@code principal.builder.class}): a connection that
 * logged in with an API key over PLAIN is its service account ({@code User:sa-…}), not the
 * key, so re-authenticating with the account's next key keeps the principal (the broker
 * refuses a re-authentication that changes it). SCRAM users (Amazon MSK's model) are
 * themselves; connections without SASL are anonymous. Called after every successful
 * authentication and re-authentication, it also records when each key or user first
 * authenticated ({@link ApiKeys#recordFirstAuthentication}).
 */
public class ServiceAccountPrincipalBuilder implements KafkaPrincipalBuilder, KafkaPrincipalSerde {
    private final DefaultKafkaPrincipalBuilder serde = new DefaultKafkaPrincipalBuilder(null, null);

    @Override
    public KafkaPrincipal build(AuthenticationContext context) {
        if (!(context instanceof SaslAuthenticationContext)) {
            return KafkaPrincipal.ANONYMOUS;
        }
        SaslAuthenticationContext sasl = (SaslAuthenticationContext) context;
        String id = sasl.server().getAuthorizationID();
        ApiKeys.recordFirstAuthentication(id);
        if ("PLAIN".equals(sasl.server().getMechanismName())) {
            String account = ApiKeys.serviceAccount(id);
            return new KafkaPrincipal(KafkaPrincipal.USER_TYPE, account != null ? account : id);
        }
        return new KafkaPrincipal(KafkaPrincipal.USER_TYPE, id);
    }

    @Override
    public byte[] serialize(KafkaPrincipal principal) {
        return serde.serialize(principal);
    }

    @Override
    public KafkaPrincipal deserialize(byte[] bytes) {
        return serde.deserialize(bytes);
    }
}
