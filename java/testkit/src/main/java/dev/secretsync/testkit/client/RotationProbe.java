package dev.secretsync.testkit.client;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * A Kafka application as the end-to-end tests need one: a producer sending all the time, a
 * consumer in a group, an admin client asking for the cluster every half second, all three
 * built once, from the file secretsync writes, loaded as it is (whatever it says about
 * callback handlers). Every 200 ms it writes what it saw to a JSON status file: messages
 * sent, acknowledged and consumed, every failed send, poll and admin call (by exception
 * type), and each client's own authentication metrics. It never prints a property value.
 *
 * <pre>
 * java ... RotationProbe CONFIG TOPIC GROUP STATUS_FILE [CONSUMER_KEY=VALUE...]
 * </pre>
 *
 * The optional {@code KEY=VALUE} arguments are consumer properties set over the file's (e.g.
 * {@code partition.assignment.strategy}). So that a consumer that stops consuming explains
 * itself, the status also says what the consumer last did: whether its thread is alive, its
 * assignment after the last poll, when a poll last returned, the last record (offset, when),
 * when its fetch requests last advanced, the last poll error (type, when), the last
 * rebalance callbacks, its group metrics, and the consume thread's stack when a poll has not
 * returned for 5 s or the drain timed out.
 *
 * A line "stop" on stdin (or stdin closing) stops the producer, waits up to 60 s for the
 * consumer to see every acknowledged message, writes the final status ("final": true) and
 * exits 0.
 */
public final class RotationProbe {
    static final List<String> AUTH_METRICS = List.of(
            "successful-authentication-total",
            "failed-authentication-total",
            "successful-reauthentication-total",
            "failed-reauthentication-total");

    // the consumer's group and fetch metrics the report shows
    static final List<String> GROUP_METRICS = List.of(
            "assigned-partitions",
            "rebalance-total",
            "failed-rebalance-total",
            "last-rebalance-seconds-ago",
            "last-heartbeat-seconds-ago",
            "fetch-total");

    private final AtomicLong sent = new AtomicLong();
    private final AtomicLong failedSends = new AtomicLong();
    private final AtomicLong failedPolls = new AtomicLong();
    private final AtomicLong adminOk = new AtomicLong();
    private final AtomicLong adminFailed = new AtomicLong();
    private final Set<Long> acked = ConcurrentHashMap.newKeySet();
    private final Set<Long> consumed = ConcurrentHashMap.newKeySet();
    private final List<String> errors = new CopyOnWriteArrayList<>();
    private volatile boolean producing = true;
    private volatile boolean running = true;

    // what the consumer last did (written by the consume thread, read by the status writer)
    private final AtomicLong polls = new AtomicLong();
    private final Map<String, AtomicLong> pollErrorCounts = new ConcurrentHashMap<>();
    private volatile List<String> assignment = List.of();
    private volatile long lastOffset = -1;
    private volatile long lastRecordAtMs = -1;
    private volatile long lastPollAtMs = -1;
    private volatile Map<String, Object> lastPollError;
    private final Deque<String> rebalances = new ArrayDeque<>(); // guarded by itself
    private volatile List<String> consumeStack = List.of();
    private volatile Thread consumeThread;
    private volatile Boolean aliveAtDrainEnd;
    private double lastFetchTotal = -1; // the status writer's (one thread)
    private long lastFetchAtMs = -1;

    private RotationProbe() {
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> consumerOverrides = new LinkedHashMap<>();
        for (int i = 4; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("not KEY=VALUE: argument " + (i + 1));
            }
            consumerOverrides.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        new RotationProbe().run(Paths.get(args[0]), args[1], args[2], Paths.get(args[3]), consumerOverrides);
    }

    private static Properties load(Path path) throws IOException {
        Properties props = new Properties();
        try (InputStream in = Files.newInputStream(path)) {
            props.load(in); // what Kafka's own loader does
        }
        return props;
    }

    private void error(String where, Throwable e) {
        if (errors.size() < 50) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            errors.add(where + ": " + e.getClass().getName() + " / " + cause.getClass().getName());
        }
    }

    private void run(Path config, String topic, String group, Path status, Map<String, String> consumerOverrides)
            throws Exception {
        Properties base = load(config);

        Properties p = new Properties();
        p.putAll(base);
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "probe-producer");
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "20000");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "10000");

        Properties c = new Properties();
        c.putAll(base);
        c.put(ConsumerConfig.CLIENT_ID_CONFIG, "probe-consumer");
        c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.putAll(consumerOverrides);

        Properties a = new Properties();
        a.putAll(base);
        a.put("client.id", "probe-admin");
        a.put("default.api.timeout.ms", "10000");
        a.put("request.timeout.ms", "5000");

        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
                KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer());
                Admin admin = Admin.create(a)) {
            Thread consume = new Thread(() -> consumeLoop(consumer, topic), "probe-consume");
            consumeThread = consume;
            Thread administer = new Thread(() -> adminLoop(admin), "probe-admin");
            Thread produce = new Thread(() -> produceLoop(producer, topic), "probe-produce");
            Thread stdin = new Thread(RotationProbe.this::awaitStop, "probe-stdin");
            stdin.setDaemon(true);
            consume.start();
            administer.start();
            produce.start();
            stdin.start();

            while (producing) {
                writeStatus(status, producer, consumer, admin, false);
                TimeUnit.MILLISECONDS.sleep(200); // the status cadence, not a wait for a condition
            }
            produce.join();
            producer.flush();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (!consumed.containsAll(acked) && System.nanoTime() < deadline) {
                writeStatus(status, producer, consumer, admin, false);
                TimeUnit.MILLISECONDS.sleep(100);
            }
            if (!consumed.containsAll(acked)) {
                consumeStack = stackOf(consume); // where the consumer is stuck, for the report
            }
            aliveAtDrainEnd = consume.isAlive(); // the final status: before it is told to end
            running = false;
            consume.join(30_000);
            administer.join(30_000);
            writeStatus(status, producer, consumer, admin, true);
        }
    }

    private void awaitStop() {
        try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null && !line.trim().equals("stop")) {
                // other input is ignored
            }
        } catch (IOException e) {
            // stdin gone: stop as well
        }
        producing = false;
    }

    private void produceLoop(KafkaProducer<String, String> producer, String topic) {
        long seq = 0;
        while (producing) {
            long n = seq++;
            try {
                producer.send(new ProducerRecord<>(topic, Long.toString(n)), (meta, e) -> {
                    if (e == null) {
                        acked.add(n);
                    } else {
                        failedSends.incrementAndGet();
                        error("send", e);
                    }
                });
                sent.incrementAndGet();
            } catch (RuntimeException e) {
                failedSends.incrementAndGet();
                error("send", e);
            }
            try {
                TimeUnit.MILLISECONDS.sleep(20); // the send rate: 50 messages a second
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    private void consumeLoop(KafkaConsumer<String, String> consumer, String topic) {
        consumer.subscribe(Collections.singletonList(topic), new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                rebalance("revoked", partitions);
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                rebalance("assigned", partitions);
            }

            @Override
            public void onPartitionsLost(Collection<TopicPartition> partitions) {
                rebalance("lost", partitions);
            }
        });
        while (running) {
            try {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(100))) {
                    consumed.add(Long.parseLong(record.value()));
                    lastOffset = record.offset();
                    lastRecordAtMs = System.currentTimeMillis();
                }
                assignment = names(consumer.assignment()); // its own thread: not thread-safe
            } catch (RuntimeException e) {
                failedPolls.incrementAndGet();
                error("poll", e);
                pollErrorCounts.computeIfAbsent(e.getClass().getSimpleName(), k -> new AtomicLong()).incrementAndGet();
                Map<String, Object> last = new LinkedHashMap<>();
                last.put("type", e.getClass().getName());
                last.put("at_ms", System.currentTimeMillis());
                lastPollError = last;
            }
            polls.incrementAndGet();
            lastPollAtMs = System.currentTimeMillis();
        }
    }

    private static List<String> names(Collection<TopicPartition> partitions) {
        List<String> names = new ArrayList<>();
        for (TopicPartition tp : partitions) {
            names.add(tp.toString());
        }
        Collections.sort(names);
        return names;
    }

    private void rebalance(String what, Collection<TopicPartition> partitions) {
        synchronized (rebalances) {
            rebalances.addLast(System.currentTimeMillis() + " " + what + " " + names(partitions));
            while (rebalances.size() > 20) {
                rebalances.removeFirst();
            }
        }
    }

    private static List<String> stackOf(Thread thread) {
        List<String> frames = new ArrayList<>();
        for (StackTraceElement f : thread.getStackTrace()) {
            frames.add(f.getClassName() + "." + f.getMethodName() + ":" + f.getLineNumber());
            if (frames.size() == 25) {
                break;
            }
        }
        return frames;
    }

    private void adminLoop(Admin admin) {
        while (running) {
            try {
                admin.describeCluster().nodes().get(10, TimeUnit.SECONDS);
                adminOk.incrementAndGet();
            } catch (Exception e) {
                adminFailed.incrementAndGet();
                error("admin", e);
            }
            try {
                TimeUnit.MILLISECONDS.sleep(500); // the call rate
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    /** The client's own authentication counters, summed over its metric groups. */
    static Map<String, Double> authMetrics(Map<MetricName, ? extends Metric> metrics) {
        return sums(metrics, AUTH_METRICS);
    }

    /** {@code names}, each summed over the metric groups that have it (0 where none has). */
    static Map<String, Double> sums(Map<MetricName, ? extends Metric> metrics, List<String> names) {
        Map<String, Double> out = new TreeMap<>();
        for (String name : names) {
            out.put(name, 0.0);
        }
        for (Map.Entry<MetricName, ? extends Metric> e : metrics.entrySet()) {
            String name = e.getKey().name();
            if (out.containsKey(name) && e.getValue().metricValue() instanceof Number) {
                out.merge(name, ((Number) e.getValue().metricValue()).doubleValue(), Double::sum);
            }
        }
        return out;
    }

    private void writeStatus(Path status, KafkaProducer<?, ?> producer, KafkaConsumer<?, ?> consumer,
            Admin admin, boolean done) throws IOException {
        long missing = acked.stream().filter(n -> !consumed.contains(n)).count();
        long firstMissing = acked.stream().filter(n -> !consumed.contains(n)).mapToLong(Long::longValue).min().orElse(-1);
        long lastConsumed = consumed.stream().mapToLong(Long::longValue).max().orElse(-1);
        Map<String, Object> s = new LinkedHashMap<>();
        s.put("pid", ProcessHandle.current().pid());
        s.put("final", done);
        s.put("at_ms", System.currentTimeMillis());
        s.put("sent", sent.get());
        s.put("acked", acked.size());
        s.put("consumed", consumed.size());
        s.put("missing", missing);
        s.put("first_missing", firstMissing);
        s.put("last_consumed", lastConsumed);
        s.put("failed_sends", failedSends.get());
        s.put("failed_polls", failedPolls.get());
        s.put("admin_ok", adminOk.get());
        s.put("admin_failed", adminFailed.get());
        s.put("errors", errors);
        Map<String, Object> c = new LinkedHashMap<>();
        c.put("polls", polls.get());
        c.put("last_poll_at_ms", lastPollAtMs);
        Boolean drained = aliveAtDrainEnd;
        c.put("thread_alive", drained != null ? drained : consumeThread != null && consumeThread.isAlive());
        c.put("assignment", assignment);
        c.put("last_offset", lastOffset);
        c.put("last_record_at_ms", lastRecordAtMs);
        c.put("last_poll_error", lastPollError);
        Map<String, Long> counts = new TreeMap<>();
        pollErrorCounts.forEach((k, v) -> counts.put(k, v.get()));
        c.put("poll_errors", counts);
        synchronized (rebalances) {
            c.put("rebalances", new ArrayList<>(rebalances));
        }
        Map<String, Double> group = sums(consumer.metrics(), GROUP_METRICS);
        double fetches = group.get("fetch-total");
        if (fetches != lastFetchTotal) { // a stalled fetcher sends none, however healthy the member
            lastFetchTotal = fetches;
            lastFetchAtMs = System.currentTimeMillis();
        }
        c.put("last_fetch_at_ms", lastFetchAtMs);
        c.put("group", group);
        List<String> stack = consumeStack;
        Thread t = consumeThread;
        if (stack.isEmpty() && t != null && t.isAlive() && lastPollAtMs > 0
                && System.currentTimeMillis() - lastPollAtMs > 5000) {
            stack = stackOf(t); // a poll that does not return: where it waits
        }
        c.put("stack", stack);
        s.put("consumer", c);
        Map<String, Object> metrics = new LinkedHashMap<>();
        metrics.put("producer", authMetrics(producer.metrics()));
        metrics.put("consumer", authMetrics(consumer.metrics()));
        metrics.put("admin", authMetrics(admin.metrics()));
        s.put("metrics", metrics);
        Json.writeFile(status, s);
    }
}
