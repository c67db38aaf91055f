package dev.gmem.tck;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.ArchHooks.ContentEffect;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.tck.internal.Session;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * The arch contracts, run on a real gmem runtime (the kvm backend unless {@link #backend()} says
 * otherwise) whose VMs of {@link #vmType()} get the hooks of {@link #provider()}. Extend it in
 * your plugin's tests and name your provider:
 *
 * <pre>{@code
 * class TdxContractTest extends ArchContractTests {
 *   protected ArchProvider provider() { return new TdxArchProvider(); }
 *   protected VmType vmType() { return VmType.TDX; }
 *   protected void beforePrivateAccess(Vm vm, long gpa, long length) { ... TDG.MEM.PAGE.ACCEPT ... }
 * }
 * }</pre>
 *
 * <p>The kit wraps the provider's hooks to record every call (and, for some contracts, to inject
 * what a hypervisor or firmware would do: a veto, a refused host fault, a failed invalidation),
 * always after your hook has run. {@code Vm.arch(YourType.class)} therefore sees the wrapper; use
 * {@link #arch(Vm, Class)} in your hooks instead. Every failure message starts with the
 * {@link Contract}'s {@code [id]}.
 *
 * <p>The hooks below describe what your arch is expected to do where arches differ. Their defaults
 * take the arch's own answers (so a self-consistent arch passes); override one to state what your
 * hardware documents, and the kit checks the hooks against it.
 */
public abstract class ArchContractTests extends ArchFixture {
  // ---- contracts ------------------------------------------------------------------------

  @Test
  void prepareOncePerPageOnFirstPrivateUse() throws Exception {
    Contract c = Contract.PREPARE_ONCE;
    Guest g = guest(4, 0);
    if (!privateMemory()) {
      guestWrite(c, g, 1, pattern(1), false);
      guestRead(c, g, 1, false);
      c.checkEquals(0, log().prepareCount(g.page(1)), "prepare calls for a VM without private memory");
      privateRefused(c, g);
      return;
    }
    toPrivate(g, 0, 3);
    makeShared(vm, g.file(), 3 * PAGE, PAGE);
    guestWrite(c, g, 1, pattern(1), true);
    c.checkEquals(1, log().prepareCount(g.page(1)), "prepare calls covering page 1 after its first private use");
    guestWrite(c, g, 1, pattern(2), true);
    guestRead(c, g, 1, true);
    c.checkEquals(1, log().prepareCount(g.page(1)), "prepare calls covering page 1 after further private use");
    c.checkEquals(0, log().prepareCount(g.page(2)), "prepare calls covering page 2, never used");

    try (HostMapping m = map(g)) {
      m.putLong(3 * PAGE, 7);
      guestRead(c, g, 3, false);
      c.checkEquals(0, log().prepareCount(g.page(3)), "prepare calls covering shared page 3 after host and guest use");
    }

    makeShared(vm, g.file(), PAGE, PAGE);
    toPrivate(g, 1, 1);
    guestWrite(c, g, 1, pattern(3), true);
    c.checkEquals(2, log().prepareCount(g.page(1)), "prepare calls covering page 1 after private → shared → private and one use");

    ExecutorService pool = Executors.newFixedThreadPool(2);
    try {
      List<Future<VcpuExit>> racing = new ArrayList<>();
      for (int t = 0; t < 2; t++) {
        byte[] data = pattern(10 + t);
        racing.add(pool.submit(() -> vm.softwareVcpu().write(g.gpa(0), data, 0, data.length, true)));
      }
      for (Future<VcpuExit> f : racing) {
        c.checkEquals(null, f.get(60, TimeUnit.SECONDS), "exit of a racing first private write to page 0");
      }
    } finally {
      pool.shutdownNow();
      // Gone before the next test: a thread's stack is a VMA, and later tests count them.
      pool.awaitTermination(60, TimeUnit.SECONDS);
    }
    c.checkEquals(1, log().prepareCount(g.page(0)), "prepare calls covering page 0 after two racing first private writes");
  }

  @Test
  void invalidateOnlyAfterThePointOfNoReturn() {
    Contract c = Contract.INVALIDATE_PONR;
    try {
      invalidateOnlyAfterThePointOfNoReturn(c);
    } catch (RuntimeException e) {
      // Whatever failed, a hook that threw after a point of no return is the finding.
      c.check(log().lateThrows.isEmpty(), () -> "a hook threw after the point of no return: " + log().lateThrows);
      throw e;
    }
  }

  private void invalidateOnlyAfterThePointOfNoReturn(Contract c) {
    Guest g = guest(4, 0);
    if (!privateMemory()) {
      try (HostMapping m = map(g)) {
        m.putLong(0, 1);
        m.putLong(PAGE, 2);
      }
      g.file().punchHole(0, 4 * PAGE);
      c.check(log().invalidateCount(g.page(0)) <= 1, () -> "page 0 invalidated " + log().invalidateCount(g.page(0)) + " times by one punch");
      c.check(log().lateThrows.isEmpty(), () -> "a hook threw after the point of no return: " + log().lateThrows);
      privateRefused(c, g);
      return;
    }
    toPrivate(g, 0, 4);
    for (long p = 0; p < 4; p++) {
      guestWrite(c, g, p, pattern(p), true);
    }
    makeShared(vm, g.file(), PAGE, PAGE);
    int[] before = {log().invalidateCount(g.page(0)), log().invalidateCount(g.page(1)), log().invalidateCount(g.page(2)),
        log().invalidateCount(g.page(3))};
    int mark = log().events.size();

    // Two runs change: [0,1) and [2,4). Refuse the second after the arch accepted it.
    log().veto = run -> run.first().index() == 2;
    c.expect(Errno.EBUSY, "conversion refused by the (injected) veto of its second run",
        () -> makeShared(vm, g.file(), 0, 4 * PAGE));
    log().veto = run -> false;
    List<String> failed = List.copyOf(log().events.subList(mark, log().events.size()));
    for (long p = 0; p < 4; p++) {
      long page = p;
      c.checkEquals(before[(int) p], log().invalidateCount(g.page(p)), "invalidate calls for page " + page + " during a failed conversion");
    }
    for (String e : failed) {
      c.check(!e.startsWith("commit "), () -> "a run was committed during a failed conversion: " + failed);
      if (e.startsWith("accept ") && !e.contains("page 2,")) {
        String run = e.substring("accept ".length());
        c.check(failed.contains("abort " + run), () -> "the accepted run " + run + " was not aborted when a later run was refused: " + failed);
      }
    }
    for (long p : new long[] {0, 2, 3}) {
      c.checkEquals(Shareability.PRIVATE, g.file().shareability(p * PAGE), "shareability of page " + p + " after the failed conversion");
    }

    mark = log().events.size();
    RuntimeException thrown = null;
    try {
      makeShared(vm, g.file(), 0, 4 * PAGE);
    } catch (RuntimeException e) {
      thrown = e;
    }
    c.check(log().lateThrows.isEmpty(), () -> "a hook threw after the point of no return: " + log().lateThrows);
    if (thrown != null) {
      c.fail("the conversion failed: " + thrown);
    }
    List<String> done = List.copyOf(log().events.subList(mark, log().events.size()));
    for (long p : new long[] {0, 2, 3}) {
      long page = p;
      c.checkEquals(before[(int) p] + 1, log().invalidateCount(g.page(p)), "invalidate calls for page " + page + " by the conversion");
    }
    c.checkEquals(before[1], log().invalidateCount(g.page(1)), "invalidate calls for page 1, shared already");
    for (int i = 0; i < done.size(); i++) {
      if (done.get(i).startsWith("commit ")) {
        String run = done.get(i);
        c.check(done.subList(0, i).stream().anyMatch(e -> e.startsWith("invalidate ")), () -> "run committed before any invalidate: " + done);
        c.check(done.subList(i, done.size()).stream().noneMatch(e -> e.startsWith("accept ")), () -> run + " committed before every run was accepted: " + done);
      }
    }
    c.check(done.stream().anyMatch(e -> e.startsWith("commit ")), () -> "no run was committed: " + done);
  }

  @Test
  void aVetoLeavesEverythingUnchanged() {
    Contract c = Contract.VETO;
    Guest g = guest(4, 0);
    if (!privateMemory()) {
      privateRefused(c, g);
      return;
    }
    toPrivate(g, 0, 4);
    makeShared(vm, g.file(), PAGE, PAGE);
    makeShared(vm, g.file(), 3 * PAGE, PAGE);
    try (HostMapping m = map(g)) {
      guestWrite(c, g, 0, pattern(0), true);
      guestWrite(c, g, 2, pattern(2), true);
      m.write(PAGE, pattern(1), 0, (int) PAGE);
      m.write(3 * PAGE, pattern(3), 0, (int) PAGE);
      for (Shareability target : new Shareability[] {Shareability.SHARED, Shareability.PRIVATE}) {
        long seq = g.file().shareabilitySequence();
        int[] prepared = new int[4];
        int[] invalidated = new int[4];
        for (int p = 0; p < 4; p++) {
          prepared[p] = log().prepareCount(g.page(p));
          invalidated[p] = log().invalidateCount(g.page(p));
        }
        log().veto = run -> true;
        try {
          c.expect(Errno.EBUSY, "conversion of [0, 4) to " + target + " with every run refused", () -> {
            if (target == Shareability.SHARED) {
              makeShared(vm, g.file(), 0, 4 * PAGE);
            } else {
              makePrivate(vm, g.file(), 0, 4 * PAGE);
            }
          });
        } finally {
          log().veto = run -> false;
        }
        c.checkEquals(seq, g.file().shareabilitySequence(), "shareability sequence after a refused conversion to " + target);
        for (int p = 0; p < 4; p++) {
          int page = p;
          Shareability want = p % 2 == 0 ? Shareability.PRIVATE : Shareability.SHARED;
          c.checkEquals(want, g.file().shareability(p * PAGE), "shareability of page " + p + " after a refused conversion to " + target);
          c.checkEquals(invalidated[p], log().invalidateCount(g.page(p)), "invalidate calls for page " + page + " by a refused conversion");
        }
        hostRefused(c, m, 0, "PRIVATE (after a refused conversion to " + target + ")");
        hostRefused(c, m, 2, "PRIVATE (after a refused conversion to " + target + ")");
        c.check(Arrays.equals(pattern(1), hostRead(c, m, 1)), () -> "shared page 1 changed by a refused conversion to " + target);
        c.check(Arrays.equals(pattern(3), hostRead(c, m, 3)), () -> "shared page 3 changed by a refused conversion to " + target);
        c.check(Arrays.equals(pattern(0), guestRead(c, g, 0, true)), () -> "private page 0 changed by a refused conversion to " + target);
        c.check(Arrays.equals(pattern(2), guestRead(c, g, 2, true)), () -> "private page 2 changed by a refused conversion to " + target);
        for (int p = 0; p < 4; p++) {
          int page = p;
          c.checkEquals(prepared[p], log().prepareCount(g.page(p)), "prepare calls for page " + page + " after a refused conversion");
        }
      }
      c.succeeds("the same conversion once the veto is lifted", () -> makeShared(vm, g.file(), 0, 4 * PAGE));
      for (int p = 0; p < 4; p++) {
        int page = p;
        c.succeeds("host read of page " + page + " after the conversion to SHARED", () -> m.getLong(page * PAGE));
      }
    }
  }

  @Test
  void populateOnlyIntoPrivatePages() {
    Contract c = Contract.POPULATE_PRIVATE;
    Guest g = guest(4, 0);
    ByteBuffer src = ByteBuffer.allocateDirect((int) (2 * PAGE));
    src.put(pattern(20)).put(pattern(21)).flip();
    if (!privateMemory()) {
      c.expect(Errno.EINVAL, "populate of a shared page (VM type without private memory)", () -> vm.populate(g.gpa(0), src.duplicate(), 1, populateFlags()));
      c.checkEquals(0, log().populateCount(g.page(0)), "postPopulate calls for a refused populate");
      return;
    }
    makePrivate(vm, g.file(), 0, 4 * PAGE);
    makeShared(vm, g.file(), 2 * PAGE, PAGE);
    try (HostMapping m = map(g)) {
      m.write(2 * PAGE, pattern(2), 0, (int) PAGE);
      long seq = g.file().shareabilitySequence();
      c.expect(Errno.EINVAL, "populate of shared page 2", () -> vm.populate(g.gpa(2), src.duplicate(), 1, populateFlags()));
      c.checkEquals(0, log().populateCount(g.page(2)), "postPopulate calls for shared page 2");
      c.checkEquals(seq, g.file().shareabilitySequence(), "shareability sequence after the refused populate");
      c.check(Arrays.equals(pattern(2), hostRead(c, m, 2)), () -> "shared page 2 changed by a refused populate");
    }
    long n = c.succeeds("populate of private pages 0 and 1", () -> vm.populate(g.gpa(0), src.duplicate(), 2, populateFlags()));
    c.checkEquals(2L, n, "pages populated");
    c.checkEquals(1, log().populateCount(g.page(0)), "postPopulate calls for page 0");
    c.expect(Errno.EEXIST, "second populate of page 0", () -> vm.populate(g.gpa(0), src.duplicate(), 1, populateFlags()));
    c.succeeds("launch after populate", () -> launch(vm));
    c.check(Arrays.equals(pattern(20), guestRead(c, g, 0, true)), () -> "populated page 0 does not hold the source bytes");
    c.check(Arrays.equals(pattern(21), guestRead(c, g, 1, true)), () -> "populated page 1 does not hold the source bytes");
    c.checkEquals(0, log().prepareCount(g.page(0)), "prepare calls for populated page 0 (populated counts as prepared)");
  }

  @Test
  void contentEffectsAsSeenThroughGmem() {
    Contract c = Contract.CONTENT_EFFECT;
    Guest g = guest(2, 0);
    try (HostMapping m = map(g)) {
      if (!privateMemory()) {
        m.write(0, pattern(5), 0, (int) PAGE);
        c.check(Arrays.equals(pattern(5), guestRead(c, g, 0, false)), () -> "the guest does not see the host's bytes");
        privateRefused(c, g);
        return;
      }
      toPrivate(g, 0, 1);
      guestWrite(c, g, 0, pattern(5), true);
      makeShared(vm, g.file(), 0, PAGE);
      check(c, expectedContentEffect(vm, Shareability.PRIVATE, Shareability.SHARED), pattern(5), hostRead(c, m, 0), "PRIVATE → SHARED, read by the host");
      m.write(0, pattern(6), 0, (int) PAGE);
      toPrivate(g, 0, 1);
      check(c, expectedContentEffect(vm, Shareability.SHARED, Shareability.PRIVATE), pattern(6), guestRead(c, g, 0, true), "SHARED → PRIVATE, read by the guest");
    }
  }

  private static void check(Contract c, ContentEffect effect, byte[] before, byte[] after, String what) {
    switch (effect) {
      case PRESERVE -> c.check(Arrays.equals(before, after), () -> what + ": expected PRESERVE, but the bytes changed");
      case ZERO -> c.check(Arrays.equals(new byte[before.length], after), () -> what + ": expected ZERO, but the page is not all zero"
          + (Arrays.equals(before, after) ? " (the bytes survived)" : ""));
      case SCRAMBLE -> c.check(!Arrays.equals(before, after), () -> what + ": expected SCRAMBLE, but the bytes survived");
      default -> c.fail("unknown content effect " + effect);
    }
  }

  @Test
  void maxMappingOrderHonouredByBothVcpuPaths() {
    Contract c = Contract.MAX_MAPPING_ORDER;
    Guest g = guest(512, Session.BLOCKS);
    boolean priv = privateMemory();
    if (priv) {
      toPrivate(g, 0, 512);
    } else {
      makeShared(vm, g.file(), 0, g.size());
    }
    guestWrite(c, g, 0, pattern(7), priv);
    for (long page : new long[] {0, 3, 511}) {
      int calls = log().maxOrderCalls();
      int sw = vm.softwareVcpu().mappingOrder(g.gpa(page), priv);
      check(c, g, page, priv, calls, sw, "the software vCPU");
      calls = log().maxOrderCalls();
      int slot = g.file().inode().mappingOrder(page);
      check(c, g, page, priv, calls, slot, "the memslot path (kvm_gmem_mapping_order)");
    }
    // Private pages live in the 2 MiB folio; shared ones are split to 4 KiB (a huge folio holds private pages only).
    c.check(!priv || g.file().inode().orderAt(0) == 9, () -> "the kit's 2 MiB folio is not in place (order " + g.file().inode().orderAt(0) + ")");
  }

  private void check(Contract c, Guest g, long page, boolean priv, int callsBefore, int order, String path) {
    if (g.file().inode().orderAt(page) <= 0) {
      c.checkEquals(0, order, path + "'s mapping order of page " + page + " in a 4 KiB folio");
      return;
    }
    c.check(log().maxOrderCalls() > callsBefore, () -> path + " did not ask the arch about page " + page + " of a 2 MiB folio");
    Integer arch = log().lastMaxOrder(g.page(page), priv);
    c.check(arch != null, () -> path + " asked the arch about another page than " + page);
    c.check(order <= arch, () -> path + " maps page " + page + " at order " + order + " above the arch's maxMappingOrder " + arch);
    int documented = documentedMaxMappingOrder(priv);
    c.check(documented < 0 || order <= documented,
        () -> path + " maps " + (priv ? "private" : "shared") + " page " + page + " at order " + order + ", the arch's documented limit is " + documented);
  }

  @Test
  void hostMayFaultAskedOnEveryHostFaultPath() {
    Contract c = Contract.HOST_MAY_FAULT;
    Guest g = guest(8, 0);
    makeShared(vm, g.file(), 0, g.size());
    GmemPage five = g.page(5);
    try (HostMapping m = map(g)) {
      log().denyHost.add(five);
      int asked = log().hostAskedCount(five);
      c.succeeds("host read of faultable page 4", () -> m.getLong(4 * PAGE));
      hostRefused(c, m, 5, "hypervisor-refused");
      try {
        m.read(3 * PAGE, new byte[(int) (4 * PAGE)], 0, (int) (4 * PAGE));
        c.fail("the host read pages [3, 7) across refused page 5");
      } catch (GmemException e) {
        c.check(e.errno() == Errno.EACCES || e.errno() == Errno.EFAULT, () -> "host read across a refused page failed with " + e.errno());
      }
      c.expect(Errno.EFAULT, "pin of a refused page", () -> g.file().pin(5 * PAGE, PAGE));
      c.expect(Errno.EFAULT, "pin of pages [4, 7) across a refused page", () -> g.file().pin(4 * PAGE, 3 * PAGE));
      c.expect(Errno.EFAULT, "GPA-view read of a refused page", () -> vm.guestMemory().loadLong(g.gpa(5)));
      c.check(!vm.guestMemory().isAccessible(g.gpa(4), 2 * PAGE), () -> "the GPA view calls a range with a refused page accessible");
      c.check(log().hostAskedCount(five) > asked, () -> "hostMayFault was never asked about page 5");

      // Raw view: handed out over one shared run whose middle page the hypervisor refuses.
      int before = log().hostAskedCount(five);
      long base = m.address();
      c.check(log().hostAskedCount(five) > before, () -> "handing out the raw view did not ask hostMayFault about page 5 (it asked about its run's first page only)");
      c.check(!ProcMaps.backing(base + 5 * PAGE).equals(ProcMaps.backing(base + 4 * PAGE)),
          () -> "the raw view maps refused page 5 like faultable page 4 (" + ProcMaps.backing(base + 5 * PAGE) + ")");
      c.checkEquals(ProcMaps.backing(base + 4 * PAGE), ProcMaps.backing(base + 6 * PAGE), "backing of faultable pages 4 and 6 in the raw view");

      if (privateMemory()) {
        // Remap: the conversion back to shared must not map the refused page.
        toPrivate(g, 4, 4);
        hostRefused(c, m, 6, "PRIVATE");
        before = log().hostAskedCount(five);
        makeShared(vm, g.file(), 4 * PAGE, 4 * PAGE);
        c.check(log().hostAskedCount(five) > before, () -> "the conversion to shared remapped page 5 without asking hostMayFault");
        c.check(!ProcMaps.backing(base + 5 * PAGE).equals(ProcMaps.backing(base + 4 * PAGE)),
            () -> "the conversion to shared mapped refused page 5 into the raw view");
      }
    }
    // Heal: a faulted page maps its covered neighbours back only where the arch says so.
    log().denyHost.add(g.page(6));
    try (HostMapping m = map(g)) {
      long base = m.address();
      c.check(!ProcMaps.backing(base + 6 * PAGE).equals(ProcMaps.backing(base + 4 * PAGE)), () -> "refused page 6 is mapped at hand-out");
      log().denyHost.remove(five);
      c.succeeds("host read of page 5 once the hypervisor allows it", () -> m.getLong(5 * PAGE));
      c.check(!ProcMaps.backing(base + 6 * PAGE).equals(ProcMaps.backing(base + 4 * PAGE)),
          () -> "healing page 5 mapped its refused neighbour 6 into the raw view");
      hostRefused(c, m, 6, "hypervisor-refused");
    }
    // MAP_POPULATE asks about every page it faults in.
    int[] asked = new int[8];
    for (int p = 0; p < 8; p++) {
      asked[p] = log().hostAskedCount(g.page(p));
    }
    try (HostMapping m = g.file().map(0, g.size(), Prot.READ_WRITE, MapFlags.SHARED | MapFlags.POPULATE)) {
      for (int p = 0; p < 8; p++) {
        int page = p;
        c.check(log().hostAskedCount(g.page(p)) > asked[p], () -> "MAP_POPULATE did not ask hostMayFault about page " + page);
      }
      hostRefused(c, m, 6, "hypervisor-refused");
    }
    log().denyHost.clear();
    if (privateMemory() && !hostMayFaultPrivate()) {
      toPrivate(g, 2, 1);
      guestWrite(c, g, 2, pattern(2), true);
      try (HostMapping m = map(g)) {
        hostRefused(c, m, 2, "PRIVATE");
        c.expect(Errno.EFAULT, "pin of PRIVATE page 2", () -> g.file().pin(2 * PAGE, PAGE));
        c.expect(Errno.EFAULT, "GPA-view read of PRIVATE page 2", () -> vm.guestMemory().loadLong(g.gpa(2)));
        long base = m.address();
        c.check(!ProcMaps.backing(base + 2 * PAGE).equals(ProcMaps.backing(base + PAGE)), () -> "the raw view maps PRIVATE page 2");
      }
    }
  }

  @Test
  void flagsRefusedWhereTheArchSaysSo() {
    Contract c = Contract.FLAGS_REFUSED;
    long supported = vm.supportedGuestMemFlags();
    if (initSharedRefused(vm)) {
      c.check((supported & GmemFlags.INIT_SHARED) == 0, () -> "supportedGuestMemFlags offers INIT_SHARED, which the arch refuses");
      c.expect(Errno.EINVAL, "a file with INIT_SHARED", () -> vm.createGuestMemFile(PAGE, fileFlags() | GmemFlags.INIT_SHARED));
    } else {
      GuestMemFile f = c.succeeds("a file with INIT_SHARED", () -> vm.createGuestMemFile(PAGE, fileFlags() | GmemFlags.INIT_SHARED));
      c.checkEquals(Shareability.SHARED, f.shareability(0), "shareability of a new INIT_SHARED file");
      f.close();
    }
    if (noDirectMapRefused(vm)) {
      c.check((supported & GmemFlags.NO_DIRECT_MAP) == 0, () -> "supportedGuestMemFlags offers NO_DIRECT_MAP, which the arch refuses");
      c.expect(Errno.EINVAL, "a file with NO_DIRECT_MAP", () -> vm.createGuestMemFile(PAGE, fileFlags() | GmemFlags.NO_DIRECT_MAP));
    } else {
      c.check(hooks(vm).supportsNoDirectMap(), () -> "the hooks refuse NO_DIRECT_MAP, which the arch documents as supported");
      if ((supported & GmemFlags.NO_DIRECT_MAP) != 0) {
        c.succeeds("a file with NO_DIRECT_MAP", () -> vm.createGuestMemFile(PAGE, fileFlags() | GmemFlags.NO_DIRECT_MAP)).close();
      }
    }
  }

  @Test
  void aLeakedPageNeverReturnsToTheAllocator() {
    Contract c = Contract.LEAK_ON_FAILURE;
    Guest g = guest(4, 0);
    boolean priv = privateMemory();
    if (priv) {
      toPrivate(g, 0, 4);
    }
    for (long p = 0; p < 4; p++) {
      guestWrite(c, g, p, pattern(p), priv);
    }
    log().failInvalidate.add(g.page(1));
    c.succeeds("punch of [0, 4) whose page 1 the firmware fails to reclaim", () -> g.file().punchHole(0, 4 * PAGE));
    c.check(log().lateThrows.isEmpty(), () -> "a hook threw after the point of no return; report firmware failures with ArchContext.leak: " + log().lateThrows);
    c.check(log().leaked.contains(g.page(1)), () -> "page 1 was not reported leaked (was it invalidated? " + log().invalidateCount(g.page(1)) + ")");
    c.check(g.file().inode().leakedPages() >= 1, () -> "GuestMemInode.leakedPages() is " + g.file().inode().leakedPages());
    c.checkEquals(0L, session.allocLog.freesCovering(1), "folios freed covering leaked page 1");
    c.check(session.allocLog.freesCovering(0) >= 1 || session.allocLog.count("free") == 0,
        () -> "page 0 was punched but not freed");
    int prepared = log().prepareCount(g.page(1));
    try {
      // kvm_gmem_get_pfn fails with EHWPOISON; the vCPU sees it as KVM_EXIT_MEMORY_FAULT.
      VcpuExit exit = vm.softwareVcpu().write(g.gpa(1), new byte[8], 0, 8, priv);
      c.check(exit instanceof VcpuExit.MemoryFault, () -> "the guest wrote leaked page 1 (exit " + exit + ")");
    } catch (GmemException e) {
      c.checkEquals(Errno.EHWPOISON, e.errno(), "errno of a guest access to a leaked page");
    }
    try (HostMapping m = map(g)) {
      hostRefused(c, m, 1, "leaked");
    }
    c.checkEquals(prepared, log().prepareCount(g.page(1)), "prepare calls for leaked page 1 after an access");
    g.file().punchHole(0, 4 * PAGE);
    c.checkEquals(0L, session.allocLog.freesCovering(1), "folios freed covering leaked page 1 after a second punch");
  }

  @Test
  void aConversionRacingFaultsNeverExposesAPrivatePage() throws Exception {
    Contract c = Contract.CONVERSION_RACE;
    Guest g = guest(2, 0);
    if (!privateMemory()) {
      privateRefused(c, g);
      return;
    }
    makeShared(vm, g.file(), 0, g.size());
    AtomicBoolean done = new AtomicBoolean();
    AtomicReference<String> exposed = new AtomicReference<>();
    AtomicLong hostReads = new AtomicLong();
    ExecutorService pool = Executors.newFixedThreadPool(3);
    try (HostMapping m = map(g)) {
      Future<?> converter = pool.submit(() -> {
        try {
          for (int i = 0; i < 200 && exposed.get() == null; i++) {
            toPrivate(g, 0, 1);
            guestWrite(c, g, 0, pattern(100 + i), true);
            makeShared(vm, g.file(), 0, PAGE);
          }
        } finally {
          done.set(true);
        }
        return null;
      });
      Future<?> accessor = pool.submit(() -> race(g, () -> m.getLong(0), "a host mapping", done, exposed, hostReads));
      Future<?> view = pool.submit(() -> race(g, () -> vm.guestMemory().loadLong(g.gpa(0)), "the GPA view", done, exposed, hostReads));
      converter.get(300, TimeUnit.SECONDS);
      accessor.get(300, TimeUnit.SECONDS);
      view.get(300, TimeUnit.SECONDS);
      // Then without a race, so a hook letting the host in now and then is caught whatever the
      // scheduling: with the page private, every read through either path is refused.
      if (exposed.get() == null) {
        toPrivate(g, 0, 1);
        for (int i = 0; i < 16 && exposed.get() == null; i++) {
          refusedWhilePrivate(() -> m.getLong(0), "a host mapping", exposed);
          refusedWhilePrivate(() -> vm.guestMemory().loadLong(g.gpa(0)), "the GPA view", exposed);
        }
      }
    } finally {
      pool.shutdownNow();
      // Gone before the next test: a thread's stack is a VMA, and later tests count them.
      pool.awaitTermination(60, TimeUnit.SECONDS);
    }
    c.check(exposed.get() == null, () -> exposed.get());
    c.check(hostReads.get() > 0, () -> "no host read succeeded at all while the page was shared");
  }

  /** A read of private page 0 must fail; one that succeeds is an exposure. */
  private static void refusedWhilePrivate(Runnable read, String path, AtomicReference<String> exposed) {
    try {
      read.run();
    } catch (GmemException e) {
      return;
    }
    exposed.compareAndSet(null, "the host read PRIVATE page 0 through " + path + " after the conversions");
  }

  /** Reads until {@code done}; a read that succeeded while the page stayed PRIVATE throughout is an exposure. */
  private static Void race(Guest g, Runnable read, String path, AtomicBoolean done, AtomicReference<String> exposed, AtomicLong reads) {
    while (!done.get()) {
      long s1 = g.file().shareabilitySequence();
      Shareability sh = g.file().shareability(0);
      try {
        read.run();
      } catch (GmemException e) {
        continue;
      }
      if (g.file().shareabilitySequence() == s1 && sh == Shareability.PRIVATE) {
        exposed.compareAndSet(null, "the host read PRIVATE page 0 through " + path + " during conversions");
        return null;
      }
      reads.incrementAndGet();
    }
    return null;
  }

  @Test
  void badInputFailsWithItsErrnoAndChangesNothing() {
    Contract c = Contract.BAD_INPUT;
    Guest g = guest(4, 0);
    long seq = g.file().shareabilitySequence();
    Shareability s0 = g.file().shareability(0);
    c.expect(Errno.EINVAL, "setShareability of an unaligned range", () -> g.file().setShareability(1, PAGE, Shareability.SHARED));
    c.expect(Errno.EINVAL, "setShareability of an empty range", () -> g.file().setShareability(0, 0, Shareability.SHARED));
    c.expect(Errno.EINVAL, "setShareability beyond EOF", () -> g.file().setShareability(3 * PAGE, 2 * PAGE, Shareability.SHARED));
    c.expect(Errno.EINVAL, "setShareability to NONE", () -> g.file().setShareability(0, PAGE, Shareability.NONE));
    c.checkEquals(seq, g.file().shareabilitySequence(), "shareability sequence after refused conversions");
    c.checkEquals(s0, g.file().shareability(0), "shareability of page 0 after refused conversions");
    c.expect(Errno.EINVAL, "a file of size 0", () -> vm.createGuestMemFile(0, fileFlags()));
    c.expect(Errno.EINVAL, "a file of unaligned size", () -> vm.createGuestMemFile(PAGE + 1, fileFlags()));
    c.expect(Errno.EINVAL, "a file with an unknown flag", () -> vm.createGuestMemFile(PAGE, fileFlags() | (1L << 50)));
    ByteBuffer src = ByteBuffer.allocateDirect((int) PAGE);
    if (privateMemory()) {
      makePrivate(vm, g.file(), 0, PAGE);
    }
    seq = g.file().shareabilitySequence();
    c.expect(Errno.EINVAL, "populate at an unaligned GPA", () -> vm.populate(g.gpa(0) + 1, src.duplicate(), 1, populateFlags()));
    c.expect(Errno.EINVAL, "populate of 0 pages", () -> vm.populate(g.gpa(0), src.duplicate(), 0, populateFlags()));
    c.expect(Errno.EINVAL, "populate outside every memslot", () -> vm.populate(GPA_BASE - PAGE, src.duplicate(), 1, populateFlags()));
    c.expect(Errno.EINVAL, "populate with flags 0x" + Long.toHexString(invalidPopulateFlags()) + " the arch does not define",
        () -> vm.populate(g.gpa(0), src.duplicate(), 1, invalidPopulateFlags()));
    c.checkEquals(0, log().populateCount(g.page(0)), "postPopulate calls after refused populates");
    c.checkEquals(seq, g.file().shareabilitySequence(), "shareability sequence after refused populates");
    if (privateMemory()) {
      beforePrivateAccess(vm, g.gpa(0), PAGE);
      guestWrite(c, g, 0, pattern(9), true);
      c.checkEquals(1, log().prepareCount(g.page(0)), "prepare calls for page 0 after refused populates and one private use");
    } else {
      privateRefused(c, g);
    }
  }
}
