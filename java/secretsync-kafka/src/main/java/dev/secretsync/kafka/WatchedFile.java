package dev.secretsync.kafka;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Properties;

/**
 * A {@code .properties} file read the way Kafka's own loader reads one
 * ({@link Properties#load(java.io.InputStream)}) and turned into credentials by a parser,
 * re-read only when the file changed (inode, size or modification time), so the check made
 * at every authentication or request costs one {@code stat}.
 *
 * <p>The last good credentials stay in use when the file is missing, unreadable, being
 * written while it was read, or holds nothing usable; the problem is reported once (not at
 * every read) and so is the recovery. A file that did not change since it was found bad is
 * not parsed again. Thread-safe.
 *
 * @param <T> the credentials (immutable)
 */
final class WatchedFile<T> {

    /** Turns the file's properties into credentials, or says (naming keys only) why not. */
    interface Parser<T> {
        T parse(Properties props) throws InvalidCredentialsException;
    }

    private final Path path;
    private final String what;
    private final Parser<T> parser;
    private final Reporter reporter;

    // guarded by this
    private T good;
    private FileIdentity goodIdentity;
    private FileIdentity badIdentity;
    private String problem;
    private long parses;

    /**
     * @param initial credentials to use until the file gives some (null for none)
     * @param what how the reports name the credentials, e.g. "SASL credentials"
     */
    WatchedFile(Path path, String what, Parser<T> parser, Reporter reporter, T initial) {
        this.path = path;
        this.what = what;
        this.parser = parser;
        this.reporter = reporter;
        this.good = initial;
    }

    Path path() {
        return path;
    }

    /** How many times the file was parsed (for tests: an unchanged file is not). */
    synchronized long parses() {
        return parses;
    }

    /**
     * The current credentials: the file's if it changed and is good, else the last good ones.
     *
     * @throws NoCredentialsException if no good credentials were ever read or given
     */
    synchronized T current() throws NoCredentialsException {
        refresh();
        if (good == null) {
            throw new NoCredentialsException(
                    "secretsync: no usable " + what + " in " + path + " (" + problem + ")");
        }
        return good;
    }

    private void refresh() {
        FileIdentity before = io(() -> FileIdentity.of(path));
        if (before == null) {
            return;
        }
        if (before.equals(goodIdentity)) {
            if (problem != null) { // it went away and came back unchanged
                problem = null;
                reporter.recovered(path, what);
            }
            return;
        }
        if (before.equals(badIdentity)) {
            return;
        }
        byte[] bytes = io(() -> Files.readAllBytes(path));
        FileIdentity after = bytes == null ? null : io(() -> FileIdentity.of(path));
        if (after == null) {
            return;
        }
        if (!before.equals(after) || bytes.length != before.size()) {
            // a writer is at work (secretsync renames a finished file into place, but
            // something else may write in place): read it again at the next use
            fail(null, "changed while being read");
            return;
        }
        parses++;
        T parsed;
        try {
            Properties props = new Properties();
            props.load(new ByteArrayInputStream(bytes));
            parsed = parser.parse(props);
        } catch (InvalidCredentialsException e) {
            fail(before, e.getMessage());
            return;
        } catch (IOException | IllegalArgumentException e) {
            // Properties.load: a malformed \\uXXXX escape; the message is not logged
            fail(before, "not a valid .properties file: " + e.getClass().getSimpleName());
            return;
        }
        boolean changed = good == null || !good.equals(parsed);
        good = parsed;
        goodIdentity = before;
        badIdentity = null;
        if (problem != null) {
            problem = null;
            reporter.recovered(path, what);
        } else if (changed) {
            reporter.reloaded(path, what);
        }
    }

    /** One file system step of {@link #refresh()}. */
    private interface IoStep<R> {
        R run() throws IOException;
    }

    /**
     * Runs {@code step}; on failure records the problem (missing, or unreadable named by the
     * error's type: the message of an I/O error names the path at most, but stay uniform)
     * and returns null.
     */
    private <R> R io(IoStep<R> step) {
        try {
            return step.run();
        } catch (NoSuchFileException e) {
            fail(null, "missing");
        } catch (IOException | SecurityException e) {
            fail(null, "cannot be read: " + e.getClass().getSimpleName());
        }
        return null;
    }

    /** Records a problem; reports it unless it is the one reported last. */
    private void fail(FileIdentity identity, String reason) {
        badIdentity = identity;
        if (!reason.equals(problem)) {
            problem = reason;
            reporter.problem(path, what, reason, good != null);
        }
    }
}
