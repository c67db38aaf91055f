package dev.gmem.core.convert;

import static dev.gmem.core.conformance.Guests.withGuest;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.conformance.PipeReference;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Kernel references taken through a host mapping before a to-private (here: {@code vmsplice} of
 * the page into a pipe, the same GUP reference O_DIRECT and io_uring fixed buffers take) are
 * invisible to user space. Upstream refuses such a conversion with EAGAIN; gmem must instead make
 * sure that nothing the guest writes into the page after the conversion reaches that reference.
 */
class KernelReferenceTest {
  static final long PAGE = 4096;
  static final long SIZE = 16 * PAGE;
  static final long FLAGS = GmemFlags.MMAP | GmemFlags.INIT_SHARED;
  static final long SHARED_VALUE = 0x5a5a_5a5a_0000_0001L;
  static final long PRIVATE_TAG = 0x7e57_0000_0000_beefL;

  static java.util.stream.Stream<String> backends() {
    return Backends.names();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aReferenceTakenBeforeToPrivateNeverSeesLaterPrivateWrites(String backend) {
    withGuest(backend, SIZE, FLAGS, (vm, f, m) -> {
      SoftwareVcpu cpu = vm.softwareVcpu();
      m.putLong(3 * PAGE, SHARED_VALUE);
      try (PipeReference pipe = PipeReference.take(m.address() + 2 * PAGE, 2 * PAGE)) {
        f.setShareability(2 * PAGE, 2 * PAGE, Shareability.PRIVATE);
        assertEquals(SHARED_VALUE, cpu.readLong(3 * PAGE, true), "contents survive the conversion");
        cpu.writeLong(3 * PAGE, PRIVATE_TAG, true);
        cpu.writeLong(2 * PAGE + 8, PRIVATE_TAG, true);
        assertEquals(SHARED_VALUE, pipe.readLong(PAGE), "the pipe shows the page as it was when it was shared");
      }
      assertEquals(PRIVATE_TAG, cpu.readLong(3 * PAGE, true), "the guest keeps its private write");
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aReferenceOutlivesItsMappingAndStillSeesNothingPrivate(String backend) {
    withGuest(backend, SIZE, FLAGS, (vm, f, first) -> {
      PipeReference pipe;
      try (HostMapping m = f.map()) {
        m.putLong(5 * PAGE, SHARED_VALUE);
        pipe = PipeReference.take(m.address() + 5 * PAGE, PAGE);
      }
      try (pipe) {
        f.setShareability(0, SIZE, Shareability.PRIVATE);
        vm.softwareVcpu().writeLong(5 * PAGE, PRIVATE_TAG, true);
        // Shared again and written by the guest: still not what the reference shows.
        f.setShareability(0, SIZE, Shareability.SHARED);
        assertEquals(PRIVATE_TAG, vm.softwareVcpu().readLong(5 * PAGE, false));
        assertEquals(SHARED_VALUE, pipe.readLong(0));
      }
    });
  }

  /** The kernel instantiates a page a raw access touches first, before gmem ever hands it out: it is detached too. */
  @ParameterizedTest
  @MethodSource("backends")
  void aPageOnlyARawAccessInstantiatedIsDetachedToo(String backend) {
    withGuest(backend, SIZE, FLAGS, (vm, f, m) -> {
      assertEquals(0, f.inode().allocatedPages());
      try (PipeReference pipe = PipeReference.take(m.address() + 7 * PAGE, PAGE)) {
        f.setShareability(7 * PAGE, PAGE, Shareability.PRIVATE);
        vm.softwareVcpu().writeLong(7 * PAGE, PRIVATE_TAG, true);
        assertEquals(0, pipe.readLong(0), "the pipe holds the page the raw access made, as it was");
      }
    });
  }
}
