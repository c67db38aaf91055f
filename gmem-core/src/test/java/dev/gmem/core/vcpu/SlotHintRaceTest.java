package dev.gmem.core.vcpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.MemoryExitException;
import dev.gmem.api.Memslot;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.memslot.MemslotTable;
import dev.gmem.core.vm.VmImpl;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The software vCPU's slot hint against a memslot deletion, made deterministic: the vCPU's "may
 * vCPUs run" check, which a hint's installer calls, stalls one installer thread for a while, and
 * the slot it is installing is deleted during the stall. The lock-free path trusts a hint without
 * checking the slot's window, so the installer checks and publishes only inside a read-side
 * section, which the deletion waits for (its first grace period; the second, for accesses that
 * loaded the hint meanwhile, is argued in {@code SoftwareVcpuImpl#install}: no seam can hold a
 * reader inside its section, so the last test here races preempted readers instead). After the deletion, an access through a hint to the deleted slot
 * would load from the unmapped (or reused) window — another file's value, or SIGSEGV.
 */
class SlotHintRaceTest {
  private static final long PAGE = 4096;
  private static final int PAGES = 16;
  private static final long SLOT1 = 1L << 30;
  private static final long VALUE = 0x5107_0000_0000_0000L;
  private static final long OTHER = 0x0e1e_0000_0000_0000L;

  static Stream<String> backends() {
    return Backends.names();
  }

  private static GuestMemFile filled(VmImpl vm, long value) {
    GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
    try (HostMapping m = f.map()) {
      for (long p = 0; p < PAGES; p++) {
        m.putLong(p * PAGE, value | p);
      }
    }
    return f;
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aHintInstalledWhileItsSlotIsDeletedIsNeverUsedAfterTheDeletion(String backend) throws Exception {
    try (GmemRuntime rt = Backends.open(backend)) {
      VmImpl vm = (VmImpl) rt.createVm(VmType.DEFAULT);
      MemslotTable table = vm.memslotTable();
      AtomicReference<Thread> stalled = new AtomicReference<>();
      CountDownLatch inCheck = new CountDownLatch(1);
      AtomicBoolean stallOver = new AtomicBoolean();
      SoftwareVcpuImpl cpu = new SoftwareVcpuImpl(table, vm.arch(), () -> {}, () -> {
        if (Thread.currentThread() == stalled.get() && inCheck.getCount() > 0) {
          inCheck.countDown();
          try {
            Thread.sleep(300);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
          stallOver.set(true);
        }
        return true;
      });
      SoftwareVcpuImpl own = (SoftwareVcpuImpl) vm.softwareVcpu();
      table.onChange(() -> {
        own.forgetHint();
        cpu.forgetHint();
      });
      GuestMemFile stays = filled(vm, VALUE);
      GuestMemFile goes = filled(vm, VALUE);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, PAGES * PAGE, stays, 0);
      vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, SLOT1, PAGES * PAGE, goes, 0);
      assertEquals(VALUE | 3, cpu.readLong(SLOT1 + 3 * PAGE, false), "slot 1's page faulted in");
      assertEquals(VALUE | 3, cpu.readLong(3 * PAGE, false), "the hint now names slot 0");

      AtomicReference<Object> installer = new AtomicReference<>();
      Thread t = new Thread(() -> {
        try {
          installer.set(cpu.readLong(SLOT1 + 3 * PAGE, false)); // a miss: looks slot 1 up and installs it
        } catch (Throwable e) {
          installer.set(e);
        }
      }, "stalled-installer");
      stalled.set(t);
      t.start();
      assertTrue(inCheck.await(10, TimeUnit.SECONDS), "the installer never checked");
      vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, SLOT1, 0, null, 0); // during the installer's stall
      assertTrue(stallOver.get(), "the deletion returned while the installer was still checking: it did not wait for "
          + "the installer's read-side section, so a hint published after its clear would outlive the window");
      goes.close();
      List<HostMapping> reuse = new ArrayList<>();
      for (int i = 0; i < 4; i++) { // map new memory at once: a stale load would likely read it
        GuestMemFile g = filled(vm, OTHER);
        reuse.add(g.map());
        g.close();
      }

      MemoryExitException e = assertThrows(MemoryExitException.class, () -> cpu.readLong(SLOT1 + 3 * PAGE, false),
          "slot 1 is deleted: the access is MMIO, not a load through the installer's hint");
      assertEquals(new VcpuExit.Mmio(SLOT1 + 3 * PAGE, false, 8, 0), e.exit());
      t.join(10_000);
      Object got = installer.get();
      assertTrue(got instanceof MemoryExitException || Long.valueOf(VALUE | 3).equals(got),
          "the installer read its slot's value or met the deletion, got " + got);
      assertEquals(VALUE | 3, cpu.readLong(3 * PAGE, false));
      reuse.forEach(HostMapping::close);
    }
  }

  /**
   * The other half, by preemption rather than a seam: more readers than cores read only slot 1, so
   * its hint stays installed and most readers sit preempted somewhere in the access path whenever
   * the deleting thread runs. A reader preempted after loading the hint but outside a read-side
   * section would resume after the window is unmapped and reused and load through it (another
   * file's value, or SIGSEGV); the lock-free paths load the hint only inside their section. The
   * deleted slot's file stays open until every reader has met the deletion, as a VMM may keep it:
   * its pages stay in the file's plane, so only the hint stands between a reader and the window. On
   * 6b99185, which loaded the hint before entering, both backends failed within 0.3–2.5 s here: a
   * load hit the SIGBUS memory of a reused raw view (InternalError); in CI the JVM aborted (exit
   * 134) in TeardownRaceTest, as a load from unmapped memory makes it.
   */
  @ParameterizedTest
  @MethodSource("backends")
  void readersPreemptedAroundADeletionNeverLoadThroughTheDeletedWindow(String backend) throws Exception {
    int readers = 4 * Runtime.getRuntime().availableProcessors() + 4;
    try (GmemRuntime rt = Backends.open(backend)) {
      VmImpl vm = (VmImpl) rt.createVm(VmType.DEFAULT);
      SoftwareVcpuImpl cpu = (SoftwareVcpuImpl) vm.softwareVcpu();
      AtomicLong reads = new AtomicLong();
      AtomicLong wrong = new AtomicLong();
      AtomicLong exits = new AtomicLong();
      AtomicBoolean stop = new AtomicBoolean();
      AtomicReference<Throwable> failed = new AtomicReference<>();
      List<Thread> threads = new ArrayList<>();
      for (int t = 0; t < readers; t++) {
        Thread th = new Thread(() -> {
          try {
            for (long p = 0; !stop.get(); p = (p + 1) % PAGES) {
              try {
                if (cpu.readLong(SLOT1 + p * PAGE, false) != (VALUE | p)) {
                  wrong.incrementAndGet();
                }
                reads.incrementAndGet();
              } catch (MemoryExitException e) {
                exits.incrementAndGet(); // between a deletion and the next bind: MMIO
              }
            }
          } catch (Throwable e) {
            failed.compareAndSet(null, e);
          }
        }, "preempted-reader-" + t);
        threads.add(th);
        th.start();
      }
      try {
        for (int round = 0; round < 50 && failed.get() == null; round++) {
          GuestMemFile goes = filled(vm, VALUE);
          vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, SLOT1, PAGES * PAGE, goes, 0);
          long seen = reads.get();
          while (reads.get() < seen + 20_000 && failed.get() == null) {
            Thread.onSpinWait(); // the readers fault the pages in and then hit them lock-free
          }
          vm.setMemoryRegion(1, Memslot.GUEST_MEMFD, SLOT1, 0, null, 0);
          List<HostMapping> reuse = new ArrayList<>();
          for (int i = 0; i < 2; i++) { // new memory at once where the window was: a stale load reads it
            GuestMemFile g = filled(vm, OTHER);
            reuse.add(g.map());
            g.close();
          }
          long before = exits.get();
          while (exits.get() < before + 20_000 && failed.get() == null) {
            Thread.onSpinWait(); // every preempted reader resumes while the file still maps its pages
          }
          goes.close(); // a VMM may keep the file of a deleted slot: the hint must not need its close
          reuse.forEach(HostMapping::close);
        }
      } finally {
        stop.set(true);
        for (Thread th : threads) {
          th.join(10_000);
        }
      }
      if (failed.get() != null) {
        throw new AssertionError("reader failed", failed.get());
      }
      assertEquals(0, wrong.get(), "loads through a deleted slot's window (of " + reads + ")");
      assertTrue(exits.get() > 0, "no reader met the slot deleted: the race was not run");
    }
  }
}
