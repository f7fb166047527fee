package dev.secretsync.kafka;

import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Where a {@link WatchedFile} tells what happened to its file. Every message names the file
 * and a reason built from key names only: no credential value ever reaches a log.
 */
interface Reporter {

    /** Credentials were read from {@code path}: the first, or new ones (not for an unchanged file). */
    void reloaded(Path path, String what);

    /**
     * {@code path} cannot be used ({@code reason}); called once per problem, not per read.
     * {@code keeping} says whether credentials read earlier stay in use.
     */
    void problem(Path path, String what, String reason, boolean keeping);

    /** {@code path} is usable again after a {@link #problem}. */
    void recovered(Path path, String what);

    /** The application's log, through slf4j (which kafka-clients brings). */
    Reporter LOG = new Reporter() {
        private final Logger log = LoggerFactory.getLogger("dev.secretsync.kafka");

        @Override
        public void reloaded(Path path, String what) {
            log.info("secretsync: read {} from {}", what, path);
        }

        @Override
        public void problem(Path path, String what, String reason, boolean keeping) {
            if (keeping) {
                log.warn("secretsync: {} cannot be used ({}); keeping the {} read before", path, reason, what);
            } else {
                log.error("secretsync: {} cannot be used ({}) and no {} were read before", path, reason, what);
            }
        }

        @Override
        public void recovered(Path path, String what) {
            log.info("secretsync: {} is usable again; {} read from it", path, what);
        }
    };
}
