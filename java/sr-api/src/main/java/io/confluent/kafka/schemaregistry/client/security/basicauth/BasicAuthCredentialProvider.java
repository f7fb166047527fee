package io.confluent.kafka.schemaregistry.client.security.basicauth;

import java.net.URL;
import org.apache.kafka.common.Configurable;

/**
 * The shape of Confluent's {@code BasicAuthCredentialProvider} (kafka-schema-registry-client),
 * declared here only so that secretsync-kafka compiles without Confluent's repository. The
 * Schema Registry client finds implementations with {@link java.util.ServiceLoader}, keeps
 * one instance per {@link #alias()} (the value of {@code basic.auth.credentials.source}),
 * calls {@link #configure} with each client's configuration and {@link #getUserInfo} before
 * every HTTP request.
 */
public interface BasicAuthCredentialProvider extends Configurable {

    /** The name that {@code basic.auth.credentials.source} selects this provider by. */
    String alias();

    /** {@code user:password} for a request to {@code url}, or null for no Authorization header. */
    String getUserInfo(URL url);
}
