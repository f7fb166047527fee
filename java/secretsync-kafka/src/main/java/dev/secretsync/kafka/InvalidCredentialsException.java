package dev.secretsync.kafka;

/**
 * A credentials file that was read but holds no usable credentials. The message names keys
 * and what is wrong with them, never a value: it goes to the application's log.
 */
final class InvalidCredentialsException extends Exception {
    private static final long serialVersionUID = 1L;

    InvalidCredentialsException(String reason) {
        super(reason, null, false, false);
    }
}
