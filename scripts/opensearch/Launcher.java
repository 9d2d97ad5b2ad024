// A single OpenSearch 2.19 node for Sluice's tests, run from the jars in .state/opensearch/lib:
//
//   java -cp '<libdir>/*' scripts/opensearch/Launcher.java <path.home> <http.port> <transport.port>
//
// OpenSearch's distribution loads its modules (HTTP, Painless, ...) from folders of plugin jars
// behind a security manager. Maven Central serves the same modules as plain jars, so this launcher
// puts them on the classpath and hands their plugin classes to the node directly, as OpenSearch's
// own test framework does. Building the node directly also skips the bootstrap checks, which a
// production node needs but a loopback test node does not (mlockall, vm.max_map_count, ...).

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.logging.log4j.LogManager;
import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.index.mapper.MapperExtrasPlugin;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

public class Launcher {
    private static final String NODE_NAME = "sluice-1";

    // The public Node constructor only loads plugins from the modules/ and plugins/ folders;
    // the protected one also accepts plugin classes, which is all a subclass is needed for.
    static final class ClasspathNode extends Node {
        ClasspathNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
            // true: refuse private index settings in requests, as a production node does.
            super(environment, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: Launcher <path.home> <http.port> <transport.port>");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        // The node scans these folders for plugin bundles and fails when they are missing; empty,
        // they contribute nothing and the classpath plugins below are the only ones.
        Files.createDirectories(home.resolve("modules"));
        Files.createDirectories(home.resolve("plugins"));

        Settings settings = Settings.builder()
                .put("path.home", home.toString())
                .put("path.data", home.resolve("data").toString())
                .put("path.logs", home.resolve("logs").toString())
                .put("cluster.name", "sluice")
                .put("node.name", NODE_NAME)
                // One node that elects itself: no discovery, no initial cluster-manager list.
                .put("discovery.type", "single-node")
                .put("network.host", "127.0.0.1")
                .put("http.port", args[1])
                .put("transport.port", args[2])
                // Above the high disk watermark (about 90% used) the node stops allocating shards
                // and eventually marks indexes read-only; a developer's disk must not fail tests.
                .put("cluster.routing.allocation.disk.threshold_enabled", false)
                .build();

        // Reads <path.home>/config/opensearch.yml too, when someone puts one there.
        Environment environment = InternalSettingsPreparer.prepareEnvironment(
                settings, Collections.emptyMap(), null, () -> NODE_NAME);

        List<Class<? extends Plugin>> plugins = List.of(
                Netty4Plugin.class,
                PainlessPlugin.class,
                CommonAnalysisPlugin.class,
                ReindexPlugin.class,
                MapperExtrasPlugin.class);

        Node node = new ClasspathNode(environment, plugins);
        CountDownLatch stopped = new CountDownLatch(1);

        // services.sh stops services with SIGTERM: closing the node flushes and releases the shard
        // and node locks, so the next start does not recover from a crash. Log4j's own shutdown
        // hook is disabled (-Dlog4j.shutdownHookEnabled=false) so the close is still logged.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                if (!node.awaitClose(20, TimeUnit.SECONDS)) {
                    System.err.println("opensearch: node did not close within 20 s");
                }
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
                LogManager.shutdown();
            }
        }, "sluice-shutdown"));

        node.start();

        // The node's threads are all daemon threads: without a live non-daemon thread the JVM
        // would exit as soon as main returned.
        stopped.await();
    }
}
