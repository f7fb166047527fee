package dev.secretsync.testkit.client;

import io.confluent.kafka.schemaregistry.client.security.basicauth.BasicAuthCredentialProvider;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;
import java.util.ServiceLoader;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

/**
 * A Schema Registry client as the end-to-end tests need one, calling its credential
 * provider exactly as Confluent's client does (its {@code BasicAuthCredentialProviderFactory}
 * and {@code RestService}, not on Maven Central): providers found with
 * {@link ServiceLoader} and kept by {@code alias()}, the one named by
 * {@code basic.auth.credentials.source} configured once with the client's configuration,
 * then {@code getUserInfo(url)} before every request, sent as a Basic Authorization header.
 *
 * <pre>
 * java ... SrProbe CONFIG STATUS_FILE
 * </pre>
 *
 * CONFIG is the file secretsync writes (loaded as it is). The probe asks GET /subjects every
 * 20 ms and writes the count of each HTTP status to STATUS_FILE; "stop" on stdin ends it.
 */
public final class SrProbe {
    private static volatile boolean running = true;

    private SrProbe() {
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        try (InputStream in = Files.newInputStream(Paths.get(args[0]))) {
            props.load(in);
        }
        Path status = Paths.get(args[1]);
        Map<String, Object> configs = new HashMap<>();
        for (String name : props.stringPropertyNames()) {
            configs.put(name, props.getProperty(name));
        }

        Map<String, BasicAuthCredentialProvider> byAlias = new HashMap<>();
        for (BasicAuthCredentialProvider p : ServiceLoader.load(
                BasicAuthCredentialProvider.class, SrProbe.class.getClassLoader())) {
            byAlias.put(p.alias(), p);
        }
        BasicAuthCredentialProvider provider = byAlias.get(props.getProperty("basic.auth.credentials.source"));
        if (provider == null) {
            System.err.println("no provider for basic.auth.credentials.source; found " + byAlias.keySet());
            System.exit(2);
        }
        provider.configure(configs);

        Thread stdin = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null && !line.trim().equals("stop")) {
                    // ignored
                }
            } catch (IOException e) {
                // stdin gone: stop
            }
            running = false;
        });
        stdin.setDaemon(true);
        stdin.start();

        URL url = new URL(props.getProperty("schema.registry.url").replaceFirst("/$", "") + "/subjects");
        Map<String, Long> statuses = new TreeMap<>();
        long requests = 0;
        while (running) {
            String code;
            HttpURLConnection conn = (HttpURLConnection) url.openConnection();
            try {
                conn.setConnectTimeout(5000);
                conn.setReadTimeout(5000);
                String userInfo = provider.getUserInfo(conn.getURL()); // per request, as RestService
                if (userInfo != null) {
                    conn.setRequestProperty("Authorization", "Basic "
                            + Base64.getEncoder().encodeToString(userInfo.getBytes(StandardCharsets.UTF_8)));
                }
                code = Integer.toString(conn.getResponseCode());
                try (InputStream body = code.startsWith("2") ? conn.getInputStream() : conn.getErrorStream()) {
                    if (body != null) {
                        body.readAllBytes();
                    }
                }
            } catch (IOException e) {
                code = e.getClass().getName();
            } finally {
                conn.disconnect();
            }
            statuses.merge(code, 1L, Long::sum);
            requests++;
            Map<String, Object> s = new LinkedHashMap<>();
            s.put("pid", ProcessHandle.current().pid());
            s.put("at_ms", System.currentTimeMillis());
            s.put("requests", requests);
            s.put("statuses", statuses);
            s.put("final", !running);
            Json.writeFile(status, s);
            TimeUnit.MILLISECONDS.sleep(20); // the request rate
        }
        Map<String, Object> s = new LinkedHashMap<>();
        s.put("pid", ProcessHandle.current().pid());
        s.put("at_ms", System.currentTimeMillis());
        s.put("requests", requests);
        s.put("statuses", statuses);
        s.put("final", true);
        Json.writeFile(status, s);
    }
}
