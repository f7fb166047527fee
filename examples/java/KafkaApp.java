/*
 * KafkaApp: a Kafka application whose credentials rotate under it, with no restart and no
 * signal. A producer, a consumer in a group and an admin client are built ONCE from the
 * file secretsync writes; secretsync-kafka's callback handler gives them the file's current
 * key at every connection and every re-authentication (KIP-368), so a rotated API key
 * reaches them within the broker's connections.max.reauth.ms.
 *
 * Run it as a single source file (Java 11+) with the library and kafka-clients on the
 * class path:
 *
 *     java -cp secretsync-kafka-0.3.0-SNAPSHOT.jar:kafka-clients-4.4.0.jar:<its deps> \
 *         KafkaApp.java /etc/kafka/client.properties orders
 *
 * The file is loaded as it is. It names the handler itself when sync.yaml's `static` adds
 *
 *     sasl.client.callback.handler.class: dev.secretsync.kafka.FileCredentialCallbackHandler
 *     secretsync.credentials.file: /etc/kafka/client.properties
 *
 * (sync.yaml.example does); otherwise this program adds both, pointing at the file it loaded.
 *
 * Every second it prints one line of what its clients did, from their own metrics:
 *
 *     sent=50 acked=50 failed=0 consumed=50 reauth=3 auth-failed=0
 *
 * It prints counts and metric values, never a property value. SIGTERM or SIGINT closes the
 * clients from a shutdown hook (the producer flushes, the consumer commits and leaves its
 * group); the JVM then exits as on any such signal (143 for SIGTERM).
 */

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.Collections;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class KafkaApp {
    static final String HANDLER = "dev.secretsync.kafka.FileCredentialCallbackHandler";
    static final String HANDLER_FILE = "secretsync.credentials.file";

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: java KafkaApp.java CLIENT_PROPERTIES TOPIC");
            System.exit(64);
        }
        Path config = Paths.get(args[0]);
        String topic = args[1];
        Properties props = new Properties();
        try (InputStream in = Files.newInputStream(config)) {
            props.load(in); // what Kafka's own loader does
        } catch (IOException e) {
            // the type only: an exception message may quote the file
            System.err.println("cannot load " + config + ": " + e.getClass().getName());
            System.exit(1);
        }
        props.putIfAbsent("sasl.client.callback.handler.class", HANDLER);
        props.putIfAbsent(HANDLER_FILE, config.toString());

        Properties consumerProps = new Properties();
        consumerProps.putAll(props);
        consumerProps.put(ConsumerConfig.GROUP_ID_CONFIG, "kafka-app");
        consumerProps.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");

        AtomicLong sent = new AtomicLong();
        AtomicLong acked = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        AtomicLong consumed = new AtomicLong();
        CountDownLatch stopped = new CountDownLatch(1);

        try (KafkaProducer<String, String> producer =
                        new KafkaProducer<>(props, new StringSerializer(), new StringSerializer());
                KafkaConsumer<String, String> consumer =
                        new KafkaConsumer<>(consumerProps, new StringDeserializer(), new StringDeserializer());
                Admin admin = Admin.create(props)) {
            // SIGTERM/SIGINT: the JVM runs this hook; it wakes the consumer and waits for main
            Thread main = Thread.currentThread();
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                stopped.countDown();
                consumer.wakeup();
                try {
                    main.join(30_000);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }));

            Thread sender = new Thread(() -> {
                while (stopped.getCount() > 0) {
                    producer.send(new ProducerRecord<>(topic, "message " + sent.incrementAndGet()), (meta, e) -> {
                        if (e == null) {
                            acked.incrementAndGet();
                        } else {
                            failed.incrementAndGet();
                            System.err.println("send failed: " + e.getClass().getName());
                        }
                    });
                    try {
                        stopped.await(20, TimeUnit.MILLISECONDS); // 50 messages a second
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }, "sender");
            sender.start();

            consumer.subscribe(Collections.singletonList(topic));
            long nextReport = System.nanoTime();
            while (stopped.getCount() > 0) {
                try {
                    consumed.addAndGet(consumer.poll(Duration.ofMillis(200)).count());
                } catch (WakeupException e) {
                    break;
                }
                if (System.nanoTime() >= nextReport) {
                    nextReport += TimeUnit.SECONDS.toNanos(1);
                    try {
                        admin.describeCluster().nodes().get(10, TimeUnit.SECONDS); // the admin client too
                    } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
                        failed.incrementAndGet();
                        System.err.println("admin call failed: " + e.getClass().getName());
                    }
                    System.out.printf("sent=%d acked=%d failed=%d consumed=%d reauth=%.0f auth-failed=%.0f%n",
                            sent.get(), acked.get(), failed.get(), consumed.get(),
                            total(producer.metrics(), "successful-reauthentication-total")
                                    + total(consumer.metrics(), "successful-reauthentication-total")
                                    + total(admin.metrics(), "successful-reauthentication-total"),
                            total(producer.metrics(), "failed-authentication-total")
                                    + total(producer.metrics(), "failed-reauthentication-total")
                                    + total(consumer.metrics(), "failed-authentication-total")
                                    + total(consumer.metrics(), "failed-reauthentication-total")
                                    + total(admin.metrics(), "failed-authentication-total")
                                    + total(admin.metrics(), "failed-reauthentication-total"));
                    System.out.flush();
                }
            }
            sender.join();
            try {
                consumer.commitSync();
            } catch (WakeupException e) {
                // the hook's wakeup() came while this thread was outside poll() (in the
                // admin call): it fires on the next blocking call, once; commit again
                consumer.commitSync();
            }
        }
        System.out.println("stopped");
    }

    /** A client metric summed over its groups (the client's own selector metrics). */
    static double total(Map<MetricName, ? extends Metric> metrics, String name) {
        double sum = 0;
        for (Map.Entry<MetricName, ? extends Metric> e : metrics.entrySet()) {
            if (e.getKey().name().equals(name) && e.getValue().metricValue() instanceof Number) {
                sum += ((Number) e.getValue().metricValue()).doubleValue();
            }
        }
        return sum;
    }
}
