package dev.gmem.arch.snp;

import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Vm;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.convert.TestRuntimes;
import dev.gmem.core.spi.CountingAllocator;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/** Real runtimes with the SNP plugin found on the class path, as a VMM gets them. */
final class SnpVms {
  static final int PAGE = 4096;
  static final long HUGE = 2L << 20;
  /** Creation flag of the test allocator's 2 MiB folios. */
  static final long BLOCKS = CountingAllocator.BLOCKS;

  private SnpVms() {}

  static Stream<String> backends() {
    return Backends.names();
  }

  /** The runtime a VMM builds: discovery finds {@link SnpArchProvider} through META-INF/services. */
  static GmemRuntime runtime(String backend) {
    return Backends.open(backend);
  }

  /** Also with core's test allocator of 2 MiB folios (files created with {@link #BLOCKS}). */
  static GmemRuntime hugeRuntime(String backend) {
    return TestRuntimes.withProviders(backend, Map.of(AllocatorProvider.class, List.of(CountingAllocator.BlockProvider.class)), Map.of());
  }

  static SnpArch arch(Vm vm) {
    return vm.arch(SnpArch.class).orElseThrow();
  }

  static GmemPage page(GuestMemFile f, long index) {
    return new GmemPage(f.inode().ino(), index);
  }

  /** {@code pages} pages of a pattern that differs per page. */
  static ByteBuffer image(int pages) {
    ByteBuffer b = ByteBuffer.allocate(pages * PAGE);
    for (int i = 0; i < pages; i++) {
      for (int j = 0; j < PAGE; j++) {
        b.put(i * PAGE + j, (byte) (j * 7 + i * 13 + 1));
      }
    }
    return b;
  }

  /** A CPUID page with one entry: function {@code fn}, outputs {@code regs}. */
  static ByteBuffer cpuidPage(int fn, int... regs) {
    ByteBuffer b = ByteBuffer.allocate(PAGE).order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(0, 1);
    b.putInt(16, fn);
    for (int r = 0; r < 4; r++) {
      b.putInt(16 + 24 + 4 * r, regs[r]);
    }
    return b;
  }
}
