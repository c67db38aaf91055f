package dev.gmem.tck.internal;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.ArchProvider;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * One kit runtime: a real gmem runtime whose discovery also finds the kit's recording providers,
 * selected for the VM type under test and as the default allocator. Discovery instantiates
 * providers by class, so the session reaches them through {@link #building()} while its runtime
 * is being built, on the building thread; a kit provider found by any other runtime serves nothing.
 */
public final class Session implements AutoCloseable {
  /** The id of the kit's providers. */
  public static final String ID = "gmem-tck";
  /** Creation flag the kit's own allocator claims for 2 MiB folios (arch runtimes only). */
  public static final long BLOCKS = KitPages.BLOCKS;

  private static final ThreadLocal<Session> BUILDING = new ThreadLocal<>();

  final ArchProvider arch;
  final AllocatorProvider allocator;
  public final ArchLog archLog = new ArchLog();
  public final AllocLog allocLog = new AllocLog();
  final List<RecordingHooks> hooks = new CopyOnWriteArrayList<>();
  private final GmemRuntime runtime;

  private Session(String backend, ArchProvider arch, VmType type, AllocatorProvider allocator, Map<String, String> properties) {
    this.arch = arch;
    this.allocator = allocator;
    ClassLoader parent = Thread.currentThread().getContextClassLoader();
    ClassLoader loader = new URLClassLoader(new URL[] {Services.DIR}, parent != null ? parent : Session.class.getClassLoader());
    GmemRuntime.Builder b = GmemRuntime.builder().classLoader(loader).property("gmem.backend", backend).property("gmem.allocator", ID);
    if (arch != null) {
      b.property("gmem.arch." + type.name(), ID);
    }
    properties.forEach(b::property);
    BUILDING.set(this);
    try {
      runtime = b.build();
    } finally {
      BUILDING.remove();
    }
  }

  /**
   * A runtime on {@code backend} whose VMs of {@code type} get {@code arch}'s hooks (recorded) and
   * whose files get {@code allocator}'s folios (recorded; null for the kit's own 4 KiB / 2 MiB
   * bookkeeping allocator), configured further with {@code properties}.
   */
  public static Session open(String backend, ArchProvider arch, VmType type, AllocatorProvider allocator, Map<String, String> properties) {
    return new Session(backend, arch, type, allocator, properties);
  }

  /** The session whose runtime this thread is building, or null. */
  static Session building() {
    return BUILDING.get();
  }

  public GmemRuntime runtime() {
    return runtime;
  }

  /** The recording hooks of {@code vm} (created by this session's runtime), if its type is the arch's. */
  public RecordingHooks hooks(Vm vm) {
    return vm.arch(RecordingHooks.class).orElseThrow(() -> new IllegalStateException("VM of type " + vm.type() + " does not run the kit's arch"));
  }

  @Override
  public void close() {
    runtime.close();
  }

  /** The services directory naming the kit's providers, written once per JVM. */
  private static final class Services {
    static final URL DIR = write();

    private static URL write() {
      try {
        Path dir = Files.createTempDirectory("gmem-tck-services");
        dir.toFile().deleteOnExit();
        Path services = Files.createDirectories(dir.resolve("META-INF/services"));
        Files.writeString(services.resolve(ArchProvider.class.getName()), KitArchProvider.class.getName() + "\n");
        Files.writeString(services.resolve(AllocatorProvider.class.getName()), KitAllocatorProvider.class.getName() + "\n");
        return dir.toUri().toURL();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }
}
