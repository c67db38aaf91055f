package dev.gmem.migrate;

import dev.gmem.api.Api;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.Vcpu;
import dev.gmem.api.Vm;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.List;

/**
 * Post-copy live migration for VMM builders. On the destination:
 * <pre>{@code
 * try (MigrationDestination d = Migration.listen(rt, new InetSocketAddress(port)).accept()) {
 *   d.run(d.vcpus().get(0));   // runs at once; missing pages come on demand
 *   d.await(Duration.ofMinutes(1));
 * }
 * }</pre>
 * On the source, with the VM stopped:
 * <pre>{@code
 * try (MigrationSource s = Migration.source(vm, List.of(vcpu), host, port)) {
 *   s.await(Duration.ofMinutes(1));   // the destination owns the VM now; close ours
 * } // on failure the source still owns every page and may resume the VM
 * }</pre>
 * The wire protocol is unauthenticated plaintext (docs/migration.md): run it over a trusted network
 * or a tunnel.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class Migration {
  private Migration() {}

  /** Binds a destination to {@code address} with default options. */
  public static MigrationDestination listen(GmemRuntime rt, InetSocketAddress address) throws IOException {
    return MigrationDestination.listen(rt, address, DestinationOptions.defaults());
  }

  /** Starts migrating the stopped {@code vm} to {@code host:port} with default options. */
  public static MigrationSource source(Vm vm, List<Vcpu> vcpus, String host, int port) throws IOException {
    return MigrationSource.start(vm, vcpus, host, port, SourceOptions.defaults());
  }
}
