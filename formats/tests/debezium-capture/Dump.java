import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.serialization.StringDeserializer;

/** Prints EXPECTED records of TOPIC as JSON lines {"key":…,"value":…}, in offset order per partition. */
public class Dump {
    public static void main(String[] a) {
        Properties p = new Properties();
        p.put("bootstrap.servers", a[0]);
        p.put("group.id", "dump-" + UUID.randomUUID());
        p.put("auto.offset.reset", "earliest");
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        int expected = Integer.parseInt(a[2]);
        long deadline = System.currentTimeMillis() + Long.parseLong(a[3]) * 1000;
        int n = 0;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            c.subscribe(List.of(a[1]));
            while (n < expected && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                    System.out.println("{\"key\":" + r.key() + ",\"value\":" + r.value() + "}");
                    n++;
                }
            }
        }
        if (n < expected) { System.err.println("only " + n + " records"); System.exit(1); }
    }
}
