package dev.gmem.core.memslot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.file.GuestMemFileImpl;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.sys.Sys;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The stage-2 view's zaps as the kernel sees them: a kernel copy from a zapped page fails (EFAULT,
 * as KVM's {@code get_user_pages} does), from a mapped one it succeeds — for map-backs from many
 * threads at once (the guard-marker path, taken under the mmap lock shared) and across a punch of a
 * page mapped elsewhere (which drops guard markers: the invalidation's {@code PROT_NONE} must hold).
 */
class StageTwoViewTest {
  static final Sys SYS = Sys.load();
  static final long PAGE = 4096;
  static final int PAGES = 64;

  /** Whether the kernel can read the view's page {@code i} (a pipe write copies from it). */
  static boolean kernelReads(StageTwoView v, long i) {
    int[] p = SYS.pipe();
    try {
      SYS.write(p[1], v.address() + i * PAGE, 1);
      return true;
    } catch (GmemException e) {
      assertEquals(Errno.EFAULT, e.errno());
      return false;
    } finally {
      SYS.closeQuietly(p[0]);
      SYS.closeQuietly(p[1]);
    }
  }

  @ParameterizedTest
  @MethodSource("dev.gmem.core.conformance.Backends#names")
  void mapBacksFromManyThreadsMapExactlyTheirPages(String backend) throws Exception {
    try (GmemRuntime rt = Backends.open(backend)) {
      GuestMemFile f = rt.createVm(VmType.DEFAULT).createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      GuestMemInodeImpl inode = ((GuestMemFileImpl) f).inodeImpl();
      try (StageTwoView v = StageTwoView.create(inode, 0, PAGES * PAGE, true)) {
        assertTrue(v.usesGuardMarkers(), "this host's kernel (6.18) takes guard markers on shared file mappings");
        for (int i = 0; i < PAGES; i++) {
          assertFalse(kernelReads(v, i), "zapped page " + i);
        }
        CountDownLatch go = new CountDownLatch(1);
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
          int first = t;
          Thread th = new Thread(() -> {
            try {
              go.await();
            } catch (InterruptedException e) {
              return;
            }
            for (int i = first; i < PAGES / 2; i += 4) {
              v.map(i, v.sequence());
            }
          });
          th.start();
          threads.add(th);
        }
        go.countDown();
        for (Thread th : threads) {
          th.join();
        }
        assertEquals(PAGES / 2, v.zappedPages());
        for (int i = 0; i < PAGES; i++) {
          assertEquals(i < PAGES / 2, kernelReads(v, i), "page " + i);
          assertEquals(i >= PAGES / 2, v.isZapped(i), "page " + i);
        }
      }
    }
  }

  @ParameterizedTest
  @MethodSource("dev.gmem.core.conformance.Backends#names")
  void aPunchOfAPageMappedElsewhereLeavesItZapped(String backend) {
    try (GmemRuntime rt = Backends.open(backend)) {
      GuestMemFile f = rt.createVm(VmType.DEFAULT).createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);
      GuestMemInodeImpl inode = ((GuestMemFileImpl) f).inodeImpl();
      try (StageTwoView v = StageTwoView.create(inode, 0, PAGES * PAGE, true)) {
        try (var m = f.map()) {
          m.write(3 * PAGE, new byte[] {7}, 0, 1); // the folio is mapped in another mapping of the file
          f.punchHole(0, 8 * PAGE); // invalidates the view's pages, then truncates (dropping guard markers)
          assertFalse(kernelReads(v, 3), "still zapped after the punch");
          long seen = v.sequence();
          v.map(3, seen);
          assertTrue(kernelReads(v, 3), "mapped back");
          f.punchHole(0, 8 * PAGE);
          assertFalse(kernelReads(v, 3), "a mapped page an invalidation zapped");
          v.map(3, seen);
          assertFalse(kernelReads(v, 3), "a map-back decided before the invalidation does not happen");
        }
      }
    }
  }
}
