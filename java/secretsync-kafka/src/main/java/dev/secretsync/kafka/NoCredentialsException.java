package dev.secretsync.kafka;

import java.io.IOException;

/**
 * No usable credentials have been read yet: the file has never been readable and valid, and
 * the client configuration gave none to start from. The message names the file and the
 * reason, never a value.
 */
public final class NoCredentialsException extends IOException {
    private static final long serialVersionUID = 1L;

    NoCredentialsException(String message) {
        super(message);
    }
}
