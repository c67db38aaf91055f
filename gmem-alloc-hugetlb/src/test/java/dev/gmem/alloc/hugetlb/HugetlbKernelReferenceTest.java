package dev.gmem.alloc.hugetlb;

import static dev.gmem.alloc.hugetlb.Errnos.expect;
import static dev.gmem.core.conformance.Guests.withGuest;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.conformance.KernelCopy;
import dev.gmem.core.conformance.PipeReference;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A kernel reference (vmsplice) to a huge page taken through a raw host mapping never sees what
 * the guest writes after a to-private of one of its pages: the whole huge page is detached, which
 * takes a free page from the pool (the old one stays with the pipe until the pipe lets go). With
 * no free page the conversion fails with ENOMEM and changes nothing.
 */
class HugetlbKernelReferenceTest {
  /** The file's 2 pages and one to detach into. */
  @RegisterExtension static final HugePool POOL = HugePool.of(3, 0);

  static final long PAGE = 4096;
  static final long HUGE = HugePool.MIB2;
  static final long FLAGS = GmemFlags.MMAP | GmemFlags.INIT_SHARED | GmemFlags.hugePageSize(21);
  static final long SHARED_VALUE = 0x5a5a_0000_0000_0001L;
  static final long PRIVATE_TAG = 0x7e57_0000_0000_beefL;

  static Stream<String> backends() {
    return Backends.names();
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aPipeReferenceToAHugePageNeverSeesLaterPrivateWrites(String backend) {
    withGuest(backend, 2 * HUGE, FLAGS, (vm, f, m) -> {
      SoftwareVcpu cpu = vm.softwareVcpu();
      m.putLong(HUGE + 3 * PAGE, SHARED_VALUE);
      m.putLong(HUGE + 4 * PAGE, 44);
      try (PipeReference pipe = PipeReference.take(m.address() + HUGE + 3 * PAGE, PAGE)) {
        f.setShareability(HUGE + 3 * PAGE, PAGE, Shareability.PRIVATE);
        cpu.writeLong(HUGE + 3 * PAGE, PRIVATE_TAG, true);
        assertEquals(SHARED_VALUE, pipe.readLong(0), "the pipe holds the huge page as it was while shared");
      }
      assertEquals(PRIVATE_TAG, cpu.readLong(HUGE + 3 * PAGE, true));
      assertEquals(44, m.getLong(HUGE + 4 * PAGE), "the shared neighbours moved with the page");
    });
  }

  /**
   * mincore on a hugetlbfs mapping reports that mapping's page table, not the page cache: after a
   * punch zapped gmem's window, a huge page a raw user instantiated reads as absent there. The
   * detach must not skip it, or the pipe's page stays in the file and takes the private write.
   */
  @ParameterizedTest
  @MethodSource("backends")
  void aHugePageARawUserInstantiatedAfterAPunchIsDetachedToo(String backend) {
    withGuest(backend, 2 * HUGE, FLAGS, (vm, f, m) -> {
      SoftwareVcpu cpu = vm.softwareVcpu();
      m.putLong(HUGE + 4 * PAGE, 1); // gmem's window maps the huge page
      f.punchHole(HUGE, HUGE); // ... and no longer does: its page-table entry is empty
      m.buffer(HUGE + 3 * PAGE, 8).putLong(0, SHARED_VALUE); // raw stores fault a page in behind gmem's back
      m.buffer(HUGE + 4 * PAGE, 8).putLong(0, 44);
      try (PipeReference pipe = PipeReference.take(m.address() + HUGE + 3 * PAGE, PAGE)) {
        f.setShareability(HUGE + 3 * PAGE, PAGE, Shareability.PRIVATE);
        cpu.writeLong(HUGE + 3 * PAGE, PRIVATE_TAG, true);
        assertEquals(SHARED_VALUE, pipe.readLong(0), "the pipe holds the huge page as it was while shared");
      }
      assertEquals(PRIVATE_TAG, cpu.readLong(HUGE + 3 * PAGE, true));
      assertEquals(44, m.getLong(HUGE + 4 * PAGE), "the raw user's shared neighbours moved with the page");
    });
  }

  @ParameterizedTest
  @MethodSource("backends")
  void withoutAFreePageToDetachIntoToPrivateFailsWithEnomemAndChangesNothing(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.SW_PROTECTED);
      try (GuestMemFile f = vm.createGuestMemFile(2 * HUGE, FLAGS); HostMapping m = f.map();
          GuestMemFile other = vm.createGuestMemFile(HUGE, FLAGS)) {
        m.putLong(HUGE + 3 * PAGE, SHARED_VALUE);
        assertNull(KernelCopy.read(m.address() + HUGE, 8), "the raw view maps the huge page");
        GmemException e = expect(Errno.ENOMEM, () -> f.setShareability(HUGE + 3 * PAGE, PAGE, Shareability.PRIVATE));
        assertEquals(HUGE, e.errorOffset().orElseThrow());
        assertEquals(Shareability.SHARED, f.shareability(HUGE + 3 * PAGE));
        assertNull(KernelCopy.read(m.address() + HUGE + 3 * PAGE, 8), "still mapped");
        assertEquals(SHARED_VALUE, m.buffer(HUGE + 3 * PAGE, 8).getLong(0));
        other.close();
        f.setShareability(HUGE + 3 * PAGE, PAGE, Shareability.PRIVATE);
        expect(Errno.EACCES, () -> m.getLong(HUGE + 3 * PAGE));
      }
    }
  }
}
