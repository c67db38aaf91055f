package dev.gmem.core.vm;

import static dev.gmem.core.conformance.Errnos.expect;
import static dev.gmem.core.conformance.Errnos.outcome;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.GuestMemInode;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.conformance.KernelCopy;
import dev.gmem.core.convert.TestRuntimes;
import dev.gmem.core.sys.Sys;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@code KVM_LINK_GUEST_MEMFD} (RFC v2) and {@code KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM} with the RFC's
 * memory-context move, on each backend: errnos in the kernel's order, a destination that may bind
 * but neither fault private memory nor run before the move, a dead source after it, zaps through
 * every file of the inode, and memory that outlives the source VM.
 */
class LinkTest {
  static final long PAGE = 4096;
  static final long GPA = 0x10_0000;
  static final long SIZE = 4 * PAGE;
  static final long SHARED = GmemFlags.MMAP | GmemFlags.INIT_SHARED;
  static final int GM = Memslot.GUEST_MEMFD;
  static final long SECRET = 0x5ec1_e7L;
  private static final Sys SYS = Sys.load();

  static Stream<String> backends() {
    return Backends.names();
  }

  private static VcpuExit.MemoryFault privateFault(long gpa) {
    return new VcpuExit.MemoryFault(VcpuExit.MemoryFault.FLAG_PRIVATE, gpa, PAGE);
  }

  private static boolean resident(HostMapping m, long offset) {
    return (SYS.mincore(m.address() + offset, PAGE)[0] & 1) != 0;
  }

  /** A SW_PROTECTED source VM with {@code SIZE} bytes bound at {@code GPA}; page 0 private holding {@code SECRET}. */
  private static GuestMemFile sourceWithSecret(Vm a) {
    GuestMemFile fa = a.createGuestMemFile(SIZE, SHARED);
    a.setMemoryRegion(0, GM, GPA, SIZE, fa, 0);
    fa.setShareability(0, PAGE, Shareability.PRIVATE);
    a.softwareVcpu().writeLong(GPA, SECRET, true);
    return fa;
  }

  @ParameterizedTest
  @MethodSource("backends")
  void linkGivesTheDestinationANewFileOnTheSameInodeWithNothingCopied(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm a = rt.createVm(VmType.SW_PROTECTED);
      Vm b = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile fa = a.createGuestMemFile(SIZE, SHARED);
      try (HostMapping ma = fa.map()) {
        ma.putLong(PAGE, 0x1234);
        GuestMemFile fb = b.linkGuestMemFile(fa, 0);

        assertNotSame(fa, fb);
        assertSame(b, fb.vm());
        assertSame(fa.inode(), fb.inode());
        assertEquals(fa.stat().ino(), fb.stat().ino(), "RFC selftest: source and destination files have one inode number");
        assertEquals(fa.size(), fb.size());
        assertEquals(fa.flags(), fb.flags());
        assertEquals(Set.of(fa, fb), Set.copyOf(fa.inode().files()));
        try (HostMapping mb = fb.map()) {
          assertEquals(0x1234, mb.getLong(PAGE), "the destination's file shows the source's bytes");
          mb.putLong(0, 7);
          assertEquals(7, ma.getLong(0), "and the source sees the destination's");
        }
        assertEquals(2, fa.inode().allocatedPages(), "one memory: nothing was copied");

        Vm c = rt.createVm(VmType.SW_PROTECTED);
        GuestMemFile fc = c.linkGuestMemFile(fb, 0);
        assertSame(fa.inode(), fc.inode(), "a linked file can be linked on");
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void linkRefusesWithTheRfcsErrnosAndAddsNoFile(String backend) {
    try (GmemRuntime rt = Backends.open(backend); GmemRuntime other = Backends.open(backend)) {
      Vm a = rt.createVm(VmType.SW_PROTECTED);
      Vm b = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile fa = a.createGuestMemFile(SIZE, SHARED);
      GuestMemInode inode = fa.inode();

      expect(Errno.EINVAL, () -> b.linkGuestMemFile(fa, 1));
      expect(Errno.EINVAL, () -> b.linkGuestMemFile(fa, 1L << 63));
      expect(Errno.EINVAL, () -> b.linkGuestMemFile(null, 0));
      GuestMemFile closed = a.createGuestMemFile(PAGE, SHARED);
      closed.close();
      expect(Errno.EINVAL, () -> b.linkGuestMemFile(closed, 0)); // the RFC: fdget fails -> EINVAL, not EBADF
      GuestMemFile foreign = other.createVm(VmType.SW_PROTECTED).createGuestMemFile(PAGE, SHARED);
      expect(Errno.EINVAL, () -> b.linkGuestMemFile(foreign, 0));
      expect(Errno.EINVAL, () -> a.linkGuestMemFile(fa, 0)); // linking to the VM that owns it
      expect(Errno.EINVAL, () -> rt.createVm(VmType.DEFAULT).linkGuestMemFile(fa, 0)); // another VM type
      assertEquals(List.of(fa), inode.files(), "failed links add no file");

      GuestMemFile fb = b.linkGuestMemFile(fa, 0);
      expect(Errno.EINVAL, () -> b.linkGuestMemFile(fb, 0)); // b owns the linked file too
      assertEquals(2, inode.files().size());

      Vm closedVm = rt.createVm(VmType.SW_PROTECTED);
      closedVm.close();
      expect(Errno.EBADF, () -> closedVm.linkGuestMemFile(fa, 1)); // the VM fd is checked before the arguments
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theDestinationMayBindButNeitherFaultPrivateMemoryNorRunBeforeTheMove(String backend) {
    boolean kvm = backend.equals("kvm");
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm a = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile fa = sourceWithSecret(a);
      fa.setShareability(2 * PAGE, PAGE, Shareability.PRIVATE);
      Vcpu va = kvm ? a.createVcpu(0) : null;
      Vm b = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile fb = b.linkGuestMemFile(fa, 0);
      b.setMemoryRegion(0, GM, GPA, SIZE, fb, 0);
      SoftwareVcpu cpuB = b.softwareVcpu();
      long pages = fa.inode().allocatedPages();

      byte[] buf = new byte[8];
      assertEquals(privateFault(GPA), cpuB.read(GPA, buf, 0, 8, true), "a private page the source faulted");
      assertEquals(privateFault(GPA + 2 * PAGE), cpuB.write(GPA + 2 * PAGE, buf, 0, 8, true), "a private page nobody faulted");
      assertEquals(pages, fa.inode().allocatedPages(), "refused faults allocate nothing");
      try (HostMapping ma = fa.map()) {
        ma.putLong(PAGE, 9);
      }
      assertEquals(9, cpuB.readLong(GPA + PAGE, false), "shared memory is not gated");
      assertEquals(9, a.softwareVcpu().readLong(GPA + PAGE, false), "on the source's lock-free path now, its slot the hint");
      if (kvm) {
        try (Vcpu vb = b.createVcpu(0)) {
          expect(Errno.EINVAL, vb::run); // KVM_RUN of a VM still waiting for its context
        }
      }

      b.moveEncryptionContextFrom(a);

      assertEquals(SECRET, cpuB.readLong(GPA, true), "the destination's guest reads the source's private memory in place");
      cpuB.writeLong(GPA + 2 * PAGE, 5, true);
      assertEquals(5, cpuB.readLong(GPA + 2 * PAGE, true));
      if (kvm) {
        try (Vcpu vb = b.createVcpu(1)) {
          assertTrue(vb.run() != null, "KVM_RUN is let through once the context is here");
        }
      }

      // The source is dead: every call fails with EIO, its guest accesses included.
      SoftwareVcpu cpuA = a.softwareVcpu();
      expect(Errno.EIO, () -> cpuA.readLong(GPA, true));
      expect(Errno.EIO, () -> cpuA.readLong(GPA + PAGE, false));
      expect(Errno.EIO, () -> cpuA.read(GPA + PAGE, buf, 0, 8, false));
      expect(Errno.EIO, () -> a.createGuestMemFile(PAGE, SHARED));
      expect(Errno.EIO, () -> a.setMemoryRegion(1, GM, 0, PAGE, fa, SIZE - PAGE));
      expect(Errno.EIO, () -> a.createVcpu(1));
      expect(Errno.EIO, () -> a.linkGuestMemFile(fb, 0));
      expect(Errno.EIO, () -> a.moveEncryptionContextFrom(b));
      if (kvm) {
        expect(Errno.EIO, va::run);
        expect(Errno.EIO, va::registers);
        va.close();
      }
      fa.punchHole(3 * PAGE, PAGE); // its files stay files: memory belongs to the inode
      assertEquals(SECRET, cpuB.readLong(GPA, true));
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theMoveRefusesWithTheKernelsErrnosAndAFailedMoveChangesNothing(String backend) {
    try (GmemRuntime rt = Backends.open(backend); GmemRuntime other = Backends.open(backend)) {
      Vm a = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile fa = sourceWithSecret(a);
      Vm b = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile fb = b.linkGuestMemFile(fa, 0);
      GuestMemFile own = b.createGuestMemFile(SIZE, SHARED);

      expect(Errno.EBADF, () -> b.moveEncryptionContextFrom(null));
      Vm closedVm = rt.createVm(VmType.SW_PROTECTED);
      closedVm.close();
      expect(Errno.EBADF, () -> b.moveEncryptionContextFrom(closedVm));
      expect(Errno.EBADF, () -> b.moveEncryptionContextFrom(other.createVm(VmType.SW_PROTECTED)));
      expect(Errno.EINVAL, () -> b.moveEncryptionContextFrom(rt.createVm(VmType.DEFAULT)));
      expect(Errno.EINVAL, () -> b.moveEncryptionContextFrom(b));

      // kvm_move_memory_ctxt_from: the memslot layouts must match pairwise in GPA order.
      expect(Errno.EINVAL, () -> b.moveEncryptionContextFrom(a)); // nothing bound yet
      b.setMemoryRegion(0, GM, GPA + SIZE, SIZE, fb, 0);
      expect(Errno.EINVAL, () -> b.moveEncryptionContextFrom(a)); // another GPA
      b.setMemoryRegion(0, GM, GPA + SIZE, 0, null, 0);
      b.setMemoryRegion(0, GM, GPA, SIZE, own, 0);
      expect(Errno.EINVAL, () -> b.moveEncryptionContextFrom(a)); // the same place, other memory
      b.setMemoryRegion(0, GM, GPA, 0, null, 0);
      b.setMemoryRegion(0, GM, GPA, SIZE - PAGE, fb, PAGE);
      expect(Errno.EINVAL, () -> b.moveEncryptionContextFrom(a)); // another size and offset
      b.setMemoryRegion(0, GM, GPA, 0, null, 0);
      b.setMemoryRegion(3, GM, GPA, SIZE, fb, 0); // slot ids need not match
      b.setMemoryRegion(4, GM, 0, PAGE, own, 0);
      expect(Errno.EINVAL, () -> b.moveEncryptionContextFrom(a)); // one slot too many
      b.setMemoryRegion(4, GM, 0, 0, null, 0);

      // Nothing changed: the destination is still gated, the source still alive with its secret.
      assertEquals(privateFault(GPA), b.softwareVcpu().read(GPA, new byte[8], 0, 8, true));
      assertEquals(SECRET, a.softwareVcpu().readLong(GPA, true));

      b.moveEncryptionContextFrom(a);
      assertEquals(SECRET, b.softwareVcpu().readLong(GPA, true));
      expect(Errno.EINVAL, () -> b.moveEncryptionContextFrom(a)); // the source has no context left
      Vm c = rt.createVm(VmType.SW_PROTECTED);
      c.setMemoryRegion(0, GM, GPA, SIZE, c.linkGuestMemFile(fa, 0), 0);
      expect(Errno.EINVAL, () -> c.moveEncryptionContextFrom(a));
      c.moveEncryptionContextFrom(b); // from its new owner the context moves on
      assertEquals(SECRET, c.softwareVcpu().readLong(GPA, true));
      expect(Errno.EIO, () -> b.softwareVcpu().readLong(GPA, true));
    }
  }

  /** Racing moves out of one source: one wins; the others see it in progress (EBUSY) or gone (EINVAL). */
  @ParameterizedTest
  @MethodSource("backends")
  void ofRacingMovesFromOneSourceExactlyOneWins(String backend) throws Exception {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm a = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile fa = sourceWithSecret(a);
      List<Vm> destinations = new ArrayList<>();
      for (int i = 0; i < 4; i++) {
        Vm d = rt.createVm(VmType.SW_PROTECTED);
        d.setMemoryRegion(0, GM, GPA, SIZE, d.linkGuestMemFile(fa, 0), 0);
        destinations.add(d);
      }
      CyclicBarrier start = new CyclicBarrier(destinations.size());
      ExecutorService pool = Executors.newFixedThreadPool(destinations.size());
      try {
        List<Future<String>> outcomes = new ArrayList<>();
        for (Vm d : destinations) {
          outcomes.add(pool.submit(() -> {
            start.await();
            return outcome(() -> d.moveEncryptionContextFrom(a));
          }));
        }
        int winners = 0;
        for (int i = 0; i < outcomes.size(); i++) {
          String outcome = outcomes.get(i).get();
          assertTrue(Set.of("ok", "EBUSY", "EINVAL").contains(outcome), outcome);
          if (outcome.equals("ok")) {
            winners++;
            assertEquals(SECRET, destinations.get(i).softwareVcpu().readLong(GPA, true));
          } else {
            assertEquals(privateFault(GPA), destinations.get(i).softwareVcpu().read(GPA, new byte[8], 0, 8, true), "a loser stays gated");
          }
        }
        assertEquals(1, winners);
        expect(Errno.EIO, () -> a.softwareVcpu().readLong(GPA, true));
      } finally {
        pool.shutdownNow();
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theArchMayVetoTheMoveAndAfterItTheDestinationsHooksGetTheInodesCalls(String backend) {
    MoveArchProvider.reset();
    try (GmemRuntime rt = TestRuntimes.withArch(backend, MoveArchProvider.class, MoveArchProvider.ID, VmType.SW_PROTECTED)) {
      Vm a = rt.createVm(VmType.SW_PROTECTED);
      Vm b = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile fa = a.createGuestMemFile(SIZE, GmemFlags.MMAP);
      a.setMemoryRegion(0, GM, GPA, SIZE, fa, 0);
      a.softwareVcpu().writeLong(GPA, SECRET, true);
      assertEquals(List.of("prepare vm0 ctx0 index 0"), MoveArchProvider.LOG);
      b.setMemoryRegion(0, GM, GPA, SIZE, b.linkGuestMemFile(fa, 0), 0);

      MoveArchProvider.veto = Errno.EBUSY;
      expect(Errno.EBUSY, () -> b.moveEncryptionContextFrom(a));
      assertEquals("veto vm1", MoveArchProvider.LOG.get(MoveArchProvider.LOG.size() - 1));
      assertEquals(privateFault(GPA + PAGE), b.softwareVcpu().write(GPA + PAGE, new byte[8], 0, 8, true), "a vetoed move changes nothing");
      assertEquals(SECRET, a.softwareVcpu().readLong(GPA, true));

      MoveArchProvider.veto = null;
      b.moveEncryptionContextFrom(a);
      assertEquals("move vm0 -> vm1", MoveArchProvider.LOG.get(MoveArchProvider.LOG.size() - 1));

      MoveArchProvider.LOG.clear();
      assertEquals(SECRET, b.softwareVcpu().readLong(GPA, true));
      b.softwareVcpu().writeLong(GPA + PAGE, 1, true);
      fa.punchHole(0, 2 * PAGE);
      assertEquals(List.of("prepare vm1 ctx0 index 1", "invalidate vm1 ctx0 index 0", "invalidate vm1 ctx0 index 1"), MoveArchProvider.LOG,
          "prepared pages stay prepared; new ones and the punch reach the destination's hooks, which hold the source's context");
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void conversionAndPunchThroughEitherFileZapEveryFilesMappings(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm a = rt.createVm(VmType.SW_PROTECTED);
      Vm b = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile fa = a.createGuestMemFile(SIZE, SHARED);
      GuestMemFile fb = b.linkGuestMemFile(fa, 0);
      a.setMemoryRegion(0, GM, GPA, SIZE, fa, 0);
      b.setMemoryRegion(0, GM, GPA, SIZE, fb, 0);
      SoftwareVcpu cpuA = a.softwareVcpu();
      try (HostMapping ma = fa.map(); HostMapping mb = fb.map()) {
        ma.putLong(PAGE, 11);
        mb.putLong(2 * PAGE, 22);
        assertEquals(11, mb.getLong(PAGE));
        assertEquals(22, cpuA.readLong(GPA + 2 * PAGE, false));

        fa.setShareability(PAGE, PAGE, Shareability.PRIVATE);
        expect(Errno.EACCES, () -> mb.getLong(PAGE)); // the linked file's host mapping lost the page
        expect(Errno.EACCES, () -> ma.getLong(PAGE));
        assertEquals(Errno.EFAULT, KernelCopy.read(mb.address() + PAGE, 8), "unreadable at the OS level through either file");
        assertEquals(Errno.EFAULT, KernelCopy.read(ma.address() + PAGE, 8));
        // SW_PROTECTED: the page makes the destination's access private, and before the context
        // move a private access of the linked file finds no page.
        assertEquals(new VcpuExit.MemoryFault(VcpuExit.MemoryFault.FLAG_PRIVATE, GPA + PAGE, PAGE),
            b.softwareVcpu().read(GPA + PAGE, new byte[8], 0, 8, false), "the destination's guest lost its shared mapping too");
        assertEquals(11, cpuA.readLong(GPA + PAGE, true));

        fb.setShareability(PAGE, PAGE, Shareability.SHARED);
        assertEquals(11, ma.getLong(PAGE), "converted back through the other file");
        assertNull(KernelCopy.read(ma.address() + PAGE, 8));

        long before = fa.inode().allocatedPages();
        assertTrue(resident(ma, 2 * PAGE) && resident(mb, 2 * PAGE));
        fb.punchHole(2 * PAGE, PAGE);
        assertEquals(before - 1, fa.inode().allocatedPages(), "the page was freed once, for every file");
        assertTrue(!resident(ma, 2 * PAGE) && !resident(mb, 2 * PAGE), "both host mappings lost it");
        assertEquals(0, cpuA.readLong(GPA + 2 * PAGE, false), "the source's guest reads the hole");
        assertEquals(0, ma.getLong(2 * PAGE));
      }
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void closingTheSourceFreesNothingWhileTheLinkedFileLives(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm a = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile fa = sourceWithSecret(a);
      try (HostMapping ma = fa.map()) {
        ma.putLong(PAGE, 0xfeed);
      }
      Vm b = rt.createVm(VmType.SW_PROTECTED);
      GuestMemFile fb = b.linkGuestMemFile(fa, 0);
      b.setMemoryRegion(0, GM, GPA, SIZE, fb, 0);
      b.moveEncryptionContextFrom(a);
      GuestMemInode inode = fa.inode();
      long pages = inode.allocatedPages();

      fa.close();
      a.close();
      assertEquals(pages, inode.allocatedPages(), "the source's file and VM are gone, the memory is not");
      assertEquals(List.of(fb), inode.files());
      assertEquals(SECRET, b.softwareVcpu().readLong(GPA, true));
      try (HostMapping mb = fb.map()) {
        assertEquals(0xfeed, mb.getLong(PAGE));
      }

      b.close();
      assertEquals(pages, inode.allocatedPages(), "the open linked file still holds it");
      fb.close();
      assertEquals(0, inode.allocatedPages(), "the last reference frees the memory");
    }
  }
}
