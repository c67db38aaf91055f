package dev.gmem.tck;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Pin;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.tck.internal.AllocLog;
import dev.gmem.tck.internal.Session;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The allocator contracts, run on a real gmem runtime whose files get the folios of
 * {@link #provider()} (recorded by the kit), driven through the public API: private guest faults,
 * conversions that split and merge, punches, pins. Extend it and name your provider:
 *
 * <pre>{@code
 * class HugetlbAllocatorContractTest extends AllocatorContractTests {
 *   @RegisterExtension static final HugePool POOL = HugePool.of(4, 0);
 *   protected AllocatorProvider provider() { return new HugetlbAllocatorProvider(); }
 *   protected long creationFlags() { return GmemFlags.hugePageSize(21); }
 *   protected long exhaustingSize() { return (free pages - reserved + 1) * 2 MiB; }
 * }
 * }</pre>
 *
 * An allocator of 4 KiB folios passes the split and merge contract by never being asked to split
 * or merge. Every failure message starts with the {@link Contract}'s {@code [id]}.
 */
public abstract class AllocatorContractTests {
  protected static final long PAGE = 4096;
  private static final long GPA = 1L << 30;

  private Session session;
  private Vm vm;
  private int nextSlot;
  private long nextGpa = GPA;

  /** The provider under test, a new instance. */
  protected abstract AllocatorProvider provider();

  /** Flags that select the allocator for a file (besides MMAP), e.g. a huge page size. Default: none. */
  protected long creationFlags() {
    return 0;
  }

  /** The VM type the kit's files belong to; it must have private memory (conversions split and merge). */
  protected VmType vmType() {
    return VmType.SW_PROTECTED;
  }

  /** The backend: {@code gmem.backend} if set, else {@code kvm}. */
  protected String backend() {
    return System.getProperty("gmem.backend", "kvm");
  }

  /** Further runtime properties. */
  protected Map<String, String> properties() {
    return Map.of();
  }

  /** Size of the kit's files: one folio of the largest order the allocator hands out for {@link #creationFlags()}. Default 2 MiB. */
  protected long blockSize() {
    return 2L << 20;
  }

  /** A file size {@code setupInode} must refuse with ENOMEM (more than the pool holds), or -1 where nothing is reserved. */
  protected long exhaustingSize() {
    return -1;
  }

  /** What the kit recorded of the allocator's calls. */
  protected final AllocLog log() {
    return session.allocLog;
  }

  @BeforeEach
  final void openRuntime() {
    session = Session.open(backend(), null, vmType(), provider(), properties());
    vm = session.runtime().createVm(vmType());
  }

  @AfterEach
  final void closeRuntime() {
    if (session != null) {
      session.close();
    }
  }

  private record Block(GuestMemFile file, long gpa) {}

  private Block block() {
    long size = blockSize();
    GuestMemFile f = vm.createGuestMemFile(size, GmemFlags.MMAP | creationFlags());
    long gpa = nextGpa;
    nextGpa += size;
    vm.setMemoryRegion(nextSlot++, Memslot.GUEST_MEMFD, gpa, size, f, 0);
    return new Block(f, gpa);
  }

  private static byte[] pattern(long seed) {
    byte[] b = new byte[64];
    Arrays.fill(b, (byte) (seed * 31 + 7));
    return b;
  }

  private void guestWrite(Contract c, Block b, long page, byte[] data) {
    VcpuExit exit = c.succeeds("private guest write to page " + page, () -> vm.softwareVcpu().write(b.gpa + page * PAGE, data, 0, data.length, true));
    c.check(exit == null, () -> "private guest write to page " + page + " exited: " + exit);
  }

  private byte[] guestRead(Contract c, Block b, long page) {
    byte[] d = new byte[64];
    VcpuExit exit = c.succeeds("private guest read of page " + page, () -> vm.softwareVcpu().read(b.gpa + page * PAGE, d, 0, d.length, true));
    c.check(exit == null, () -> "private guest read of page " + page + " exited: " + exit);
    return d;
  }

  private static List<String> since(AllocLog log, int mark) {
    return List.copyOf(log.events.subList(mark, log.events.size()));
  }

  @Test
  void splitAndMergeAreStagedAndAHugeFolioIsFreedOnceWhole() {
    Contract c = Contract.ALLOC_SPLIT_MERGE;
    Block b = block();
    GuestMemFile f = b.file;
    long pages = f.size() / PAGE;
    f.setShareability(0, f.size(), Shareability.PRIVATE);
    guestWrite(c, b, 0, pattern(1));
    guestWrite(c, b, 5, pattern(2));
    int order = f.inode().orderAt(0);
    int mark = log().events.size();
    c.succeeds("sharing page 5", () -> f.setShareability(5 * PAGE, PAGE, Shareability.SHARED));
    List<String> split = since(log(), mark);
    c.check(split.stream().noneMatch(e -> e.startsWith("free ")), () -> "a split freed a folio: " + split);
    if (order == 0) {
      c.check(split.stream().noneMatch(e -> e.startsWith("split ")), () -> "a 4 KiB folio was split: " + split);
    } else {
      String prepared = "split 0 " + order + "->";
      c.check(split.stream().anyMatch(e -> e.startsWith(prepared)), () -> "sharing page 5 of an order-" + order + " folio prepared no split of it: " + split);
      c.check(split.stream().anyMatch(e -> e.startsWith("commit " + prepared)), () -> "the split was prepared but not committed: " + split);
      c.checkEquals(0, f.inode().orderAt(5), "order of shared page 5 after the split");
    }
    c.check(Arrays.equals(pattern(1), guestRead(c, b, 0)), () -> "page 0 changed by the split");

    // A conversion refused after its merge was prepared (a pinned page: EAGAIN) aborts the merge.
    try (Pin pin = f.pin(5 * PAGE, PAGE)) {
      int m2 = log().events.size();
      c.expect(Errno.EAGAIN, "conversion to private of a block with a pinned page", () -> f.setShareability(0, f.size(), Shareability.PRIVATE));
      List<String> refused = since(log(), m2);
      c.check(refused.stream().noneMatch(e -> e.startsWith("commit ")), () -> "a refused conversion committed a restructure: " + refused);
      for (String e : refused) {
        if (e.startsWith("merge ") || e.startsWith("split ")) {
          c.check(refused.contains("abort " + e), () -> "'" + e + "' prepared for a refused conversion was not aborted: " + refused);
        }
      }
      c.checkEquals(Shareability.SHARED, f.shareability(5 * PAGE), "shareability of page 5 after the refused conversion");
    }
    mark = log().events.size();
    c.succeeds("making page 5 private again", () -> f.setShareability(5 * PAGE, PAGE, Shareability.PRIVATE));
    List<String> merge = since(log(), mark);
    c.check(merge.stream().noneMatch(e -> e.startsWith("free ")), () -> "a merge freed a folio: " + merge);
    if (order > 0) {
      c.check(merge.stream().anyMatch(e -> e.startsWith("commit merge 0 " + order)), () -> "all-private again, the block was not merged back to order " + order + ": " + merge);
      c.checkEquals(order, f.inode().orderAt(5), "order of page 5 after the merge");
    }
    c.check(Arrays.equals(pattern(2), guestRead(c, b, 5)), () -> "page 5 changed by split and merge");

    c.succeeds("a whole punch of the block", () -> f.punchHole(0, f.size()));
    for (long p : new long[] {0, 5, pages - 1}) {
      long page = p;
      long frees = log().freesCovering(p);
      boolean allocated = order > 0 || p == 0 || p == 5;
      c.checkEquals(allocated ? 1L : 0L, frees, "folios freed covering page " + page + " by a whole punch");
    }
    if (order > 0) {
      c.check(log().events.contains("free 0 order " + order), () -> "the huge folio was not freed whole: " + log().events);
    }
  }

  @Test
  void enomemArrivesBeforeAnythingChanged() {
    Contract c = Contract.ALLOC_ENOMEM;
    Block b = block();
    GuestMemFile f = b.file;
    f.setShareability(0, f.size(), Shareability.PRIVATE);
    guestWrite(c, b, 0, pattern(1));
    guestWrite(c, b, 5, pattern(2));
    int order = f.inode().orderAt(0);
    long seq = f.shareabilitySequence();
    log().enomemOnSplit = true;
    if (order > 0) {
      c.expect(Errno.ENOMEM, "sharing a page whose folio cannot be split (ENOMEM)", () -> f.setShareability(5 * PAGE, PAGE, Shareability.SHARED));
      c.checkEquals(seq, f.shareabilitySequence(), "shareability sequence after ENOMEM");
      c.checkEquals(Shareability.PRIVATE, f.shareability(5 * PAGE), "shareability of page 5 after ENOMEM");
      c.checkEquals(order, f.inode().orderAt(5), "folio order of page 5 after ENOMEM");
      c.check(log().events.stream().noneMatch(e -> e.startsWith("commit split")), () -> "a split was committed: " + log().events);
      c.check(Arrays.equals(pattern(2), guestRead(c, b, 5)), () -> "page 5 changed by a conversion that failed with ENOMEM");
      c.succeeds("the same conversion once memory is there", () -> f.setShareability(5 * PAGE, PAGE, Shareability.SHARED));
    } else {
      f.setShareability(5 * PAGE, PAGE, Shareability.SHARED);
      c.check(log().enomemOnSplit, () -> "a 4 KiB folio was asked to split");
    }
    log().enomemOnSplit = false;

    long huge = exhaustingSize();
    if (huge > 0) {
      int setups = (int) log().count("setup");
      c.expect(Errno.ENOMEM, "a file larger than the allocator can reserve", () -> vm.createGuestMemFile(huge, GmemFlags.MMAP | creationFlags()));
      c.checkEquals((long) setups, log().count("setup"), "inodes set up by a refused file");
      Block again = block();
      again.file.setShareability(0, again.file.size(), Shareability.PRIVATE);
      guestWrite(c, again, 0, pattern(3));
      c.check(Arrays.equals(pattern(3), guestRead(c, again, 0)), () -> "a file after the refused one does not work");
    }
  }

  @Test
  void punchRules() {
    Contract c = Contract.ALLOC_PUNCH;
    Block b = block();
    GuestMemFile f = b.file;
    long pages = f.size() / PAGE;
    f.setShareability(0, f.size(), Shareability.PRIVATE);
    for (long p : new long[] {0, 10, pages - 1}) {
      guestWrite(c, b, p, pattern(p));
    }
    int order = f.inode().orderAt(0);
    int mark = log().events.size();
    f.punchHole(10 * PAGE, PAGE);
    List<String> partial = since(log(), mark);
    if (order > 0) {
      c.check(partial.stream().noneMatch(e -> e.startsWith("free ")), () -> "a partial punch of a huge folio freed a folio: " + partial);
    } else {
      c.checkEquals(1L, log().freesCovering(10), "folios freed covering punched page 10");
    }
    c.check(Arrays.equals(new byte[64], guestRead(c, b, 10)), () -> "punched page 10 does not read zero");
    c.check(Arrays.equals(pattern(0), guestRead(c, b, 0)), () -> "page 0 changed by a punch of page 10");
    c.checkEquals(Shareability.PRIVATE, f.shareability(10 * PAGE), "shareability of a punched page");

    c.succeeds("sharing the last page", () -> f.setShareability((pages - 1) * PAGE, PAGE, Shareability.SHARED));
    try (Pin pin = f.pin((pages - 1) * PAGE, PAGE)) {
      mark = log().events.size();
      long seq = f.shareabilitySequence();
      GmemException e = null;
      try {
        f.punchHole(0, f.size());
      } catch (GmemException refused) {
        e = refused;
      }
      if (order > 0) {
        c.check(e != null && e.errno() == Errno.EAGAIN, () -> "a whole punch of a huge folio with a pinned page did not fail with EAGAIN");
        List<String> refused = since(log(), mark);
        c.check(refused.stream().noneMatch(x -> x.startsWith("free ") || x.startsWith("commit ")), () -> "a refused punch changed the allocator: " + refused);
        c.check(Arrays.equals(pattern(0), guestRead(c, b, 0)), () -> "page 0 changed by a refused punch");
        c.checkEquals(seq, f.shareabilitySequence(), "shareability sequence after a refused punch");
      } else if (e != null) {
        c.fail("a punch over a pinned 4 KiB page failed: " + e);
      }
    }
    c.succeeds("a whole punch of the block", () -> f.punchHole(0, f.size()));
    for (long p : new long[] {0, pages - 1}) {
      long page = p;
      c.check(log().freesCovering(p) >= 1, () -> "page " + page + " was never freed by a whole punch");
    }
    c.check(log().freesCovering(0) == 1 || order == 0, () -> "the huge folio was freed " + log().freesCovering(0) + " times");
  }
}
