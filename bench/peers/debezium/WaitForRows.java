// Waits until a topic's partitions hold EXPECTED records in all (the sum of their end offsets) and
// prints the wall-clock time it saw that, as epoch seconds, and the count.
//
// usage: WaitForRows BOOTSTRAP TOPIC EXPECTED WORKER_PID STATUS_URL TIMEOUT_SECONDS
//
// One JVM polls for the whole run: a Kafka tool started every half second (GetOffsetShell) would
// cost a JVM start-up each time, on the same two cores as the worker being timed. It gives up as
// soon as the worker has exited or the connector's status (Connect's REST API) shows a failed
// connector or task, so a broken run fails at once with Connect's own error instead of timing out.
// Exit codes: 0 reached, 2 worker exited, 3 timed out, 4 connector or task failed.

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

public class WaitForRows {
    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: WaitForRows BOOTSTRAP TOPIC EXPECTED WORKER_PID STATUS_URL TIMEOUT_SECONDS");
            System.exit(64);
        }
        String topic = args[1];
        long expected = Long.parseLong(args[2]);
        long pid = Long.parseLong(args[3]);
        URI status = URI.create(args[4]);
        long deadline = System.nanoTime() + Duration.ofSeconds(Long.parseLong(args[5])).toNanos();

        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
        long count = 0;
        try (Admin admin = Admin.create(props)) {
            while (true) {
                count = endOffsetSum(admin, topic);
                if (count >= expected) {
                    System.out.printf("%.3f %d%n", System.currentTimeMillis() / 1000.0, count);
                    return;
                }
                if (!ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
                    System.err.printf("the Connect worker (pid %d) exited; the topic %s held %d of %d records%n", pid, topic, count, expected);
                    System.exit(2);
                }
                if (failed(http, status)) {
                    System.err.printf("the connector or its task failed with %d of %d records in %s%n", count, expected, topic);
                    System.exit(4);
                }
                if (System.nanoTime() > deadline) {
                    System.err.printf("timed out: the topic %s held %d of %d records%n", topic, count, expected);
                    System.exit(3);
                }
                Thread.sleep(500);
            }
        }
    }

    // The topic does not exist until the connector writes its first record (the broker or Connect
    // creates it then): that counts as zero.
    static long endOffsetSum(Admin admin, String topic) throws Exception {
        TopicDescription description;
        try {
            description = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof UnknownTopicOrPartitionException) {
                return 0;
            }
            throw e;
        }
        Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
        description.partitions().forEach(p -> latest.put(new TopicPartition(topic, p.partition()), OffsetSpec.latest()));
        long sum = 0;
        for (ListOffsetsResultInfo info : admin.listOffsets(latest).all().get().values()) {
            sum += info.offset();
        }
        return sum;
    }

    // Whether the status reports a FAILED connector or task. A worker whose REST server does not
    // answer (yet, or any more) is left to the pid check.
    static boolean failed(HttpClient http, URI status) {
        try {
            HttpResponse<String> response = http.send(
                HttpRequest.newBuilder(status).timeout(Duration.ofSeconds(2)).GET().build(),
                HttpResponse.BodyHandlers.ofString());
            return response.body().replace(" ", "").contains("\"state\":\"FAILED\"");
        } catch (Exception e) {
            return false;
        }
    }
}
