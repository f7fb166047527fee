package dev.secretsync.kafka;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Keeps every report as one line of text, so tests can count them and search them for values. */
final class RecordingReporter implements Reporter {
    final List<String> lines = new ArrayList<>();

    @Override
    public synchronized void reloaded(Path path, String what) {
        lines.add("reloaded " + path + " " + what);
    }

    @Override
    public synchronized void problem(Path path, String what, String reason, boolean keeping) {
        lines.add("problem " + path + " " + what + " (" + reason + ") keeping=" + keeping);
    }

    @Override
    public synchronized void recovered(Path path, String what) {
        lines.add("recovered " + path + " " + what);
    }

    synchronized long count(String prefix) {
        return lines.stream().filter(l -> l.startsWith(prefix)).count();
    }

    synchronized String all() {
        return String.join("\n", lines);
    }
}
