/*
 * ReloadingApp: how a Java process should react when secretsync rewrites its
 * .properties file and sends it SIGHUP. JDK only (no Kafka on the class path);
 * run it as a single source file (Java 11+):
 *
 *     java ReloadingApp.java [--pidfile FILE] PATH
 *
 * It loads PATH with java.util.Properties.load(InputStream) (what Kafka's own
 * loader uses), prints the keys (never the values), and then waits:
 *
 *   SIGHUP          re-read PATH, print "reloaded #N keys=[...]"; a file that
 *                   cannot be read keeps the previous configuration
 *   SIGTERM/SIGINT  close everything and exit with status 0
 *
 * Without a handler, SIGHUP (like SIGTERM) makes a JVM run its shutdown hooks
 * and exit with status 129 (143 for SIGTERM): a restart at best, an outage
 * if nothing restarts the process.
 *
 * The pattern for a real application:
 *
 *   1. The signal handlers only put an event on a queue. The JVM runs each
 *      handler on a short-lived thread of its own; doing the reload there
 *      would race a second SIGHUP's reload, race shutdown, and block in I/O
 *      and in client close() calls outside the thread that owns the clients.
 *   2. The thread that owns the clients (here main) takes events from the
 *      queue. A busy loop (a consumer's poll loop) checks the queue with
 *      EVENTS.poll() between two polls instead of blocking on take().
 *   3. On reload it builds NEW clients from the new properties, swaps them
 *      in, and only then closes the old ones; if building the new ones
 *      fails, the old ones stay in use (see Clients below).
 *   4. The handlers are installed before the process announces itself (the
 *      pidfile): a SIGHUP that arrives earlier would still kill the JVM.
 */

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.TreeSet;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;

import sun.misc.Signal; // module jdk.unsupported: readable from the class path and source launcher
import sun.misc.SignalHandler;

public final class ReloadingApp {

    private enum Event { RELOAD, STOP }

    private static final BlockingQueue<Event> EVENTS = new LinkedBlockingQueue<>();

    /**
     * Stand-in for the application's Kafka and Schema Registry clients, all
     * built from one set of properties. A real application would hold, e.g.:
     *
     *   producer = new KafkaProducer<>(props, keySerializer, valueSerializer);
     *   consumer = new KafkaConsumer<>(props, keyDeserializer, valueDeserializer);
     *   registry = new CachedSchemaRegistryClient(
     *           props.getProperty("schema.registry.url"), 1000, propsAsMap);
     *
     * and close() would do producer.close(Duration.ofSeconds(30)) (which
     * flushes), consumer.commitSync() then consumer.close() (which leaves
     * the group and triggers a rebalance), and registry.close().
     */
    static final class Clients implements AutoCloseable {
        final TreeSet<String> keys;

        Clients(Properties props) {
            this.keys = new TreeSet<>(props.stringPropertyNames());
        }

        @Override
        public void close() {
            // producer.close(...); consumer.commitSync(); consumer.close(); registry.close();
        }
    }

    public static void main(String[] args) throws InterruptedException {
        Path pidfile = null;
        Path config = null;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--pidfile") && i + 1 < args.length) {
                pidfile = Paths.get(args[++i]);
            } else if (config == null && !args[i].startsWith("--")) {
                config = Paths.get(args[i]);
            } else {
                usage();
            }
        }
        if (config == null) {
            usage();
        }

        Clients clients;
        try {
            clients = new Clients(load(config));
        } catch (IOException | IllegalArgumentException e) {
            // the type only: an exception message may quote the file's content
            System.err.println("cannot load " + config + ": " + e.getClass().getName());
            System.exit(1);
            return;
        }
        System.out.println("loaded keys=" + clients.keys);

        // A process started with SIGHUP ignored (nohup, some supervisors)
        // passes that on to the JVM, which then refuses to handle it: say so
        // instead of silently never reloading.
        if (on("HUP", Event.RELOAD) == SignalHandler.SIG_IGN) {
            System.err.println("SIGHUP is ignored in this process (started with nohup?): cannot reload");
            System.exit(2);
        }
        on("TERM", Event.STOP);
        on("INT", Event.STOP);

        if (pidfile != null) {
            writePidfile(pidfile);
        }
        System.out.println("ready pid=" + ProcessHandle.current().pid());

        int reloads = 0;
        try {
            while (true) {
                List<Event> events = new ArrayList<>();
                events.add(EVENTS.take());
                EVENTS.drainTo(events); // several SIGHUPs in a row: one reload
                if (events.contains(Event.STOP)) {
                    break;
                }
                Clients fresh;
                try {
                    fresh = new Clients(load(config));
                } catch (IOException | IllegalArgumentException e) {
                    System.err.println(
                            "reload failed: " + e.getClass().getName() + "; keeping the previous clients");
                    continue;
                }
                Clients old = clients;
                clients = fresh; // from here on, new work uses the new clients
                old.close();
                reloads++;
                System.out.println("reloaded #" + reloads + " keys=" + clients.keys);
            }
        } finally {
            clients.close();
            if (pidfile != null) {
                try {
                    Files.deleteIfExists(pidfile);
                } catch (IOException e) {
                    System.err.println("cannot remove " + pidfile + ": " + e.getClass().getName());
                }
            }
        }
        System.out.println("stopped");
    }

    /** Installs a handler that only queues {@code event}; returns the previous handler. */
    private static SignalHandler on(String signal, Event event) {
        return Signal.handle(new Signal(signal), sig -> EVENTS.offer(event));
    }

    private static Properties load(Path path) throws IOException {
        Properties props = new Properties();
        try (InputStream in = Files.newInputStream(path)) {
            props.load(in);
        }
        return props;
    }

    /** Written to a temp file and renamed, so a reader never sees a partial pid. */
    private static void writePidfile(Path pidfile) {
        Path tmp = pidfile.resolveSibling(pidfile.getFileName() + ".tmp");
        try {
            Files.write(tmp, (ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.US_ASCII));
            Files.move(tmp, pidfile, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            System.err.println("cannot write " + pidfile + ": " + e.getClass().getName());
            System.exit(1);
        }
    }

    private static void usage() {
        System.err.println("usage: java ReloadingApp.java [--pidfile FILE] PATH");
        System.exit(64);
    }
}
