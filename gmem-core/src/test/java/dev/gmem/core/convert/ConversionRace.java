package dev.gmem.core.convert;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.MemoryExitException;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.PipeReference;
import dev.gmem.core.sys.Sys;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Host, OS-level and software-vCPU accesses race conversions and punches for a bounded number of
 * operations, on a SW_PROTECTED VM whose arch zeroes pages leaving private use
 * ({@link TestRuntimes#withZeroingArch}): the host must never read a private tag, neither through
 * gmem's accessors nor by a kernel copy from the mapping's raw address; a shared write that no
 * conversion or punch touched must read back; nothing deadlocks. Reusable by allocator plugins
 * (gmem-core's test jar): {@code extraFlags} selects the allocator, {@code blockPages} its folio
 * size, so that whole blocks are converted and punched too.
 */
public final class ConversionRace {
  static final long PAGE = 4096;
  static final long PRIVATE_TAG = 0x7e57_0000_0000_0000L;
  static final long SHARED_TAG = 0x5a5a_0000_0000_0000L;
  static final long TAG_MASK = 0xffff_0000_0000_0000L;

  private ConversionRace() {}

  /**
   * Runs the race on a file of {@code pages} pages created with INIT_SHARED and {@code extraFlags}.
   *
   * @param blockPages the allocator's folio size in pages: one operation in four covers whole blocks
   * @param rounds     operations per racing thread
   */
  public static void run(GmemRuntime rt, long extraFlags, int pages, int blockPages, int rounds) throws Exception {
    Sys sys = TestInode.SYS;
    Vm vm = rt.createVm(VmType.SW_PROTECTED);
    try (GuestMemFile f = vm.createGuestMemFile(pages * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED | extraFlags);
        HostMapping map = f.map()) {
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, pages * PAGE, f, 0);
      SoftwareVcpu cpu = vm.softwareVcpu();
      // Bumped before and after every conversion or punch of a page: even and unchanged = untouched.
      AtomicLongArray epochs = new AtomicLongArray(pages);
      AtomicLong leaks = new AtomicLong();
      AtomicLong lost = new AtomicLong();
      AtomicLong sharedWrites = new AtomicLong();
      AtomicLong privateWrites = new AtomicLong();
      AtomicLong conversions = new AtomicLong();
      AtomicLong rawReads = new AtomicLong();
      AtomicLong vmsplices = new AtomicLong();

      // One kernel reference taken before the race and held across all of it: the strongest case of
      // the vmsplice thread's check, and one that always happens (on huge pages that thread's own
      // attempts can all meet covered blocks).
      PipeReference early = PipeReference.take(map.address(), PAGE);
      vmsplices.incrementAndGet();

      ExecutorService pool = Executors.newFixedThreadPool(7);
      List<Future<?>> jobs = new ArrayList<>();
      for (int c = 0; c < 2; c++) {
        long seed = c;
        jobs.add(pool.submit(() -> {
          SplittableRandom r = new SplittableRandom(seed);
          for (int i = 0; i < rounds / 2; i++) {
            int start;
            int len;
            if (r.nextInt(4) == 0) {
              int blocks = pages / blockPages;
              start = r.nextInt(blocks) * blockPages;
              len = (1 + r.nextInt(Math.min(2, blocks - start / blockPages))) * blockPages;
            } else {
              start = r.nextInt(pages);
              len = 1 + r.nextInt(Math.min(8, pages - start));
            }
            for (int p = start; p < start + len; p++) {
              epochs.incrementAndGet(p);
            }
            try {
              if (r.nextInt(8) == 0) {
                f.punchHole(start * PAGE, len * PAGE);
              } else {
                f.setShareability(start * PAGE, len * PAGE, r.nextBoolean() ? Shareability.PRIVATE : Shareability.SHARED);
                conversions.incrementAndGet();
              }
            } catch (GmemException e) {
              // EAGAIN: a pin; on huge pages also ENOMEM, while a pipe below holds a detached
              // huge page and the pool has none to spare for the next detach.
              assertTrue(e.errno() == Errno.EAGAIN || (blockPages > 1 && e.errno() == Errno.ENOMEM), e.getMessage());
            } finally {
              for (int p = start; p < start + len; p++) {
                epochs.incrementAndGet(p);
              }
            }
          }
          return null;
        }));
      }
      jobs.add(pool.submit(() -> {
        SplittableRandom r = new SplittableRandom(7);
        for (int i = 0; i < rounds; i++) {
          int p = r.nextInt(pages);
          long e1 = epochs.get(p);
          long v = SHARED_TAG | i;
          try {
            map.putLong(p * PAGE, v);
            sharedWrites.incrementAndGet();
            long back = map.getLong(p * PAGE);
            if ((map.getLong(p * PAGE + 8) & TAG_MASK) == PRIVATE_TAG) {
              leaks.incrementAndGet();
            }
            if ((e1 & 1) == 0 && e1 == epochs.get(p) && back != v) {
              lost.incrementAndGet();
            }
          } catch (GmemException e) {
            // EACCES: private. On huge pages also ENOMEM: a punched page's refault needs a huge
            // page while the pool's spares are held by detached pages the vmsplice job's pipes keep.
            assertTrue(e.errno() == Errno.EACCES || (blockPages > 1 && e.errno() == Errno.ENOMEM), e.getMessage());
          }
        }
        return null;
      }));
      jobs.add(pool.submit(() -> {
        // The kernel copies from the raw mapping: where gmem covered a page it faults (EFAULT).
        SplittableRandom r = new SplittableRandom(17);
        int[] pipe = sys.pipe();
        jnr.ffi.Pointer buf = sys.allocate(8); // held: the memory is freed with the Pointer
        try {
          for (int i = 0; i < rounds; i++) {
            int p = r.nextInt(pages);
            try {
              sys.write(pipe[1], map.address() + p * PAGE + 8, 8);
            } catch (GmemException e) {
              assertEquals(Errno.EFAULT, e.errno(), e.getMessage());
              continue;
            }
            sys.read(pipe[0], buf.address(), 8);
            rawReads.incrementAndGet();
            if ((buf.getLong(0) & TAG_MASK) == PRIVATE_TAG) {
              leaks.incrementAndGet();
            }
          }
        } finally {
          sys.closeQuietly(pipe[0]);
          sys.closeQuietly(pipe[1]);
        }
        return null;
      }));
      jobs.add(pool.submit(() -> {
        // A kernel reference (vmsplice) held across conversions: whatever the page became since,
        // the pipe must never show a private write.
        SplittableRandom r = new SplittableRandom(23);
        java.util.ArrayDeque<PipeReference> held = new java.util.ArrayDeque<>();
        try {
          for (int i = 0; i < rounds / 4; i++) {
            int p = r.nextInt(pages);
            try {
              held.add(PipeReference.take(map.address() + p * PAGE, PAGE));
              vmsplices.incrementAndGet();
            } catch (GmemException covered) {
              assertEquals(Errno.EFAULT, covered.errno(), covered.getMessage()); // the page was private
            }
            if (held.size() > 16) {
              try (PipeReference oldest = held.poll()) {
                if ((oldest.readLong(8) & TAG_MASK) == PRIVATE_TAG) {
                  leaks.incrementAndGet();
                }
              }
            }
          }
        } finally {
          held.forEach(PipeReference::close);
        }
        return null;
      }));
      for (int g = 0; g < 2; g++) {
        boolean writer = g == 0;
        jobs.add(pool.submit(() -> {
          SplittableRandom r = new SplittableRandom(writer ? 11 : 13);
          for (int i = 0; i < rounds; i++) {
            int p = r.nextInt(pages);
            try {
              if (writer) {
                cpu.writeLong(p * PAGE + 8, PRIVATE_TAG | i, true);
                privateWrites.incrementAndGet();
              } else if ((cpu.readLong(p * PAGE + 8, false) & TAG_MASK) == PRIVATE_TAG) {
                leaks.incrementAndGet(); // a shared guest access saw private data
              }
            } catch (MemoryExitException e) {
              // the page had the other shareability: the VMM would convert and retry
            } catch (GmemException e) {
              // On huge pages a guest fault of a punched page needs a huge page too, as the host
              // accessors' refaults above (KVM_RUN's -ENOMEM); nothing else may fail here.
              assertTrue(blockPages > 1 && e.errno() == Errno.ENOMEM, e.getMessage());
            }
          }
          return null;
        }));
      }
      pool.shutdown();
      assertTrue(pool.awaitTermination(120, TimeUnit.SECONDS), "deadlock: racing threads did not finish");
      for (Future<?> j : jobs) {
        j.get();
      }
      try (early) {
        if ((early.readLong(8) & TAG_MASK) == PRIVATE_TAG) {
          leaks.incrementAndGet();
        }
      }
      assertEquals(0, leaks.get(), "host or shared reads of private data");
      assertEquals(0, lost.get(), "shared writes lost without an intervening conversion or punch");
      assertTrue(sharedWrites.get() > 0 && privateWrites.get() > 0 && conversions.get() > 0 && rawReads.get() > 0 && vmsplices.get() > 0,
          "the race exercised every path: " + sharedWrites + " shared, " + privateWrites + " private writes, " + conversions
              + " conversions, " + rawReads + " raw reads, " + vmsplices + " vmsplices");
    }
  }
}
