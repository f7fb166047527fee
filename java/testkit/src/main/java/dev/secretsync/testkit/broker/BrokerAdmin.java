package dev.secretsync.testkit.broker;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialDeletion;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;

/**
 * The test's operator console for the broker, one JVM for the whole session: commands on
 * stdin, one answer line each on stdout ({@code ok}, or {@code error <exception type>}).
 * It connects to the broker's PLAINTEXT listener (loopback only), as the cluster's operator.
 *
 * <pre>
 * scram-set USER PASSWORD      SCRAM-SHA-512 credential stored in the KRaft metadata (MSK's model)
 * scram-delete USER
 * topic NAME PARTITIONS
 * </pre>
 */
public final class BrokerAdmin {
    private BrokerAdmin() {
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "operator");
        try (Admin admin = Admin.create(props);
                BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
            System.out.println("ready");
            String line;
            while ((line = in.readLine()) != null) {
                String[] cmd = line.trim().split(" ");
                try {
                    switch (cmd[0]) {
                        case "scram-set":
                            admin.alterUserScramCredentials(Collections.singletonList(new UserScramCredentialUpsertion(
                                    cmd[1], new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), cmd[2])))
                                    .all().get(30, TimeUnit.SECONDS);
                            break;
                        case "scram-delete":
                            admin.alterUserScramCredentials(Collections.singletonList(
                                    new UserScramCredentialDeletion(cmd[1], ScramMechanism.SCRAM_SHA_512)))
                                    .all().get(30, TimeUnit.SECONDS);
                            break;
                        case "topic":
                            admin.createTopics(Collections.singletonList(
                                    new NewTopic(cmd[1], Integer.parseInt(cmd[2]), (short) 1)))
                                    .all().get(30, TimeUnit.SECONDS);
                            break;
                        default:
                            throw new IllegalArgumentException("unknown command");
                    }
                    System.out.println("ok");
                } catch (Exception e) {
                    Throwable cause = e.getCause() != null ? e.getCause() : e;
                    System.out.println("error " + cause.getClass().getName());
                }
                System.out.flush();
            }
        }
    }
}
