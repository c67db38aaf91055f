package dev.gmem.tck;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Memslot;
import dev.gmem.api.Prot;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.ArchHooks.ContentEffect;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.tck.internal.ArchLog;
import dev.gmem.tck.internal.Session;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;

/**
 * What a vendor's {@link ArchContractTests} subclass states about its arch (the provider, the VM
 * type, how a guest converts and accepts memory, what the hardware documents), and the kit's
 * per-test runtime, VM and guest helpers the contracts use. Vendors extend
 * {@link ArchContractTests}, not this class.
 */
public abstract class ArchFixture {
  protected static final long PAGE = 4096;
  /** Where the kit's memslots start: 1 GiB, so that 2 MiB blocks align in GPA and file alike. */
  protected static final long GPA_BASE = 1L << 30;

  Session session;
  Vm vm;
  private int nextSlot;
  private long nextGpa = GPA_BASE;

  /** The provider under test, a new instance (the kit hands it to the runtime it builds). */
  protected abstract ArchProvider provider();

  /** The VM type to test: by default the provider's first type with private memory, else its first. */
  protected VmType vmType() {
    return provider().vmTypes().stream().filter(VmType::hasPrivateMemory).findFirst()
        .orElseGet(() -> provider().vmTypes().iterator().next());
  }

  /** The backend: {@code gmem.backend} if set, else {@code kvm} (the real guest_memfd). */
  protected String backend() {
    return System.getProperty("gmem.backend", "kvm");
  }

  /** Further runtime properties ({@code gmem.*} keys), e.g. to enable a feature the arch needs. */
  protected Map<String, String> properties() {
    return Map.of();
  }

  /** Creation flags of the kit's files (besides the kit's own allocator bit). */
  protected long fileFlags() {
    return GmemFlags.MMAP;
  }

  /**
   * Makes {@code [offset, offset+length)} of {@code file} private the way a guest does on this
   * arch; the pages may be in any state. Default: the VMM's {@code setShareability(PRIVATE)}.
   */
  protected void makePrivate(Vm vm, GuestMemFile file, long offset, long length) {
    file.setShareability(offset, length, Shareability.PRIVATE);
  }

  /** Makes the range shared the way a guest does on this arch (pKVM: MEM_SHARE). Default: {@code setShareability(SHARED)}. */
  protected void makeShared(Vm vm, GuestMemFile file, long offset, long length) {
    file.setShareability(offset, length, Shareability.SHARED);
  }

  /**
   * Called after pages became private, before the guest first touches them privately: what the
   * guest must do first on this arch (TDX: ACCEPT; SNP: PVALIDATE). Default: nothing.
   */
  protected void beforePrivateAccess(Vm vm, long gpa, long length) {}

  /**
   * Launches {@code vm} after the kit populated its initial image, before the guest first runs: what
   * a VMM does between building the image and running the guest on this arch (TDX:
   * {@code KVM_TDX_FINALIZE_VM}; SNP: {@code SNP_LAUNCH_FINISH}). The kit calls it once per VM
   * after its populates and never populates that VM again. Default: nothing (no launch phase).
   */
  protected void launch(Vm vm) {}

  /** The content effect the arch documents for a conversion. Default: the hooks' own {@code contentEffect}. */
  protected ContentEffect expectedContentEffect(Vm vm, Shareability from, Shareability to) {
    return hooks(vm).contentEffect(from, to);
  }

  /** Whether INIT_SHARED must be refused. Default: the VM has private memory and the hooks do not support it. */
  protected boolean initSharedRefused(Vm vm) {
    return hooks(vm).hasPrivateMemory() && !hooks(vm).supportsInitShared();
  }

  /** Whether NO_DIRECT_MAP must be refused. Default: the hooks' {@code !supportsNoDirectMap()}. */
  protected boolean noDirectMapRefused(Vm vm) {
    return !hooks(vm).supportsNoDirectMap();
  }

  /** The documented largest mapping order of a private (or shared) page, or -1 for "whatever the arch answers". */
  protected int documentedMaxMappingOrder(boolean isPrivate) {
    return -1;
  }

  /** Whether the host may fault a PRIVATE page on this arch. Default: no. */
  protected boolean hostMayFaultPrivate() {
    return false;
  }

  /** Populate flags the arch accepts for a plain data page (TDX: MEASURE; SNP: NORMAL). Default 0. */
  protected long populateFlags() {
    return 0;
  }

  /** Populate flags the arch must refuse (EINVAL). Default: bit 62, which no arch defines. */
  protected long invalidPopulateFlags() {
    return 1L << 62;
  }

  // ---- kit plumbing ----------------------------------------------------------------------

  /** The vendor's hooks of {@code vm} (unwrapped). */
  protected final ArchHooks hooks(Vm vm) {
    return session.hooks(vm).vendor();
  }

  /** The arch's inspection interface of {@code vm}, as {@code Vm.arch(type)} gives it without the kit. */
  protected final <T> Optional<T> arch(Vm vm, Class<T> type) {
    ArchHooks vendor = hooks(vm);
    return type.isInstance(vendor) ? Optional.of(type.cast(vendor)) : Optional.empty();
  }

  /** What the kit recorded of the arch's hooks. */
  protected final ArchLog log() {
    return session.archLog;
  }

  /** The VM under test. */
  protected final Vm vm() {
    return vm;
  }

  @BeforeEach
  final void openRuntime() {
    session = Session.open(backend(), provider(), vmType(), null, properties());
    vm = session.runtime().createVm(vmType());
  }

  @AfterEach
  final void closeRuntime() {
    if (session != null) {
      session.close();
    }
  }

  /** A file of the VM bound to a new memslot. */
  protected record Guest(Vm vm, GuestMemFile file, long gpa, long size) {
    public long gpa(long page) {
      return gpa + page * PAGE;
    }

    public GmemPage page(long index) {
      return new GmemPage(file.inode().ino(), index);
    }
  }

  /** A new file of {@code pages} pages, {@code extraFlags} added to {@link #fileFlags()}, bound at a 2 MiB aligned GPA. */
  protected final Guest guest(long pages, long extraFlags) {
    long size = pages * PAGE;
    // A VM without private memory reaches its guest_memfd only as shared memory (INIT_SHARED).
    long flags = fileFlags() | extraFlags | (privateMemory() ? 0 : GmemFlags.INIT_SHARED);
    GuestMemFile f = vm.createGuestMemFile(size, flags);
    long gpa = nextGpa;
    nextGpa += (size + (2L << 20) - 1) & -(2L << 20);
    vm.setMemoryRegion(nextSlot++, Memslot.GUEST_MEMFD, gpa, size, f, 0);
    return new Guest(vm, f, gpa, size);
  }

  boolean privateMemory() {
    return hooks(vm).hasPrivateMemory();
  }

  void toPrivate(Guest g, long page, long n) {
    makePrivate(vm, g.file, page * PAGE, n * PAGE);
    beforePrivateAccess(vm, g.gpa(page), n * PAGE);
  }

  static byte[] pattern(long seed) {
    byte[] b = new byte[(int) PAGE];
    long x = seed * 0x9E3779B97F4A7C15L + 1;
    for (int i = 0; i < b.length; i++) {
      x ^= x << 13;
      x ^= x >>> 7;
      x ^= x << 17;
      b[i] = (byte) x;
    }
    return b;
  }

  /** A guest write of a whole page, which must complete. */
  static void guestWrite(Contract c, Guest g, long page, byte[] data, boolean privateAccess) {
    VcpuExit exit = c.succeeds((privateAccess ? "private" : "shared") + " guest write to page " + page,
        () -> g.vm.softwareVcpu().write(g.gpa(page), data, 0, data.length, privateAccess));
    c.check(exit == null, () -> (privateAccess ? "private" : "shared") + " guest write to page " + page + " exited: " + exit);
  }

  static byte[] guestRead(Contract c, Guest g, long page, boolean privateAccess) {
    byte[] b = new byte[(int) PAGE];
    VcpuExit exit = c.succeeds((privateAccess ? "private" : "shared") + " guest read of page " + page,
        () -> g.vm.softwareVcpu().read(g.gpa(page), b, 0, b.length, privateAccess));
    c.check(exit == null, () -> (privateAccess ? "private" : "shared") + " guest read of page " + page + " exited: " + exit);
    return b;
  }

  static byte[] hostRead(Contract c, HostMapping m, long page) {
    byte[] b = new byte[(int) PAGE];
    c.succeeds("host read of page " + page, () -> m.read(page * PAGE, b, 0, b.length));
    return b;
  }

  /** The host read of {@code page} must be refused. */
  static void hostRefused(Contract c, HostMapping m, long page, String why) {
    try {
      m.getLong(page * PAGE);
    } catch (GmemException e) {
      c.check(e.errno() == Errno.EACCES || e.errno() == Errno.EFAULT || e.errno() == Errno.EHWPOISON,
          () -> "host read of " + why + " page " + page + " failed with " + e.errno() + " (want EACCES, EFAULT or EHWPOISON): " + e.getMessage());
      return;
    }
    c.fail("the host read " + why + " page " + page + " through a mapping");
  }

  HostMapping map(Guest g) {
    return g.file.map(0, g.size, Prot.READ_WRITE, MapFlags.SHARED);
  }

  /** The PRIVATE conversion a VM without private memory must refuse. */
  void privateRefused(Contract c, Guest g) {
    long seq = g.file.shareabilitySequence();
    c.expect(Errno.EINVAL, "setShareability(PRIVATE) on a VM type without private memory",
        () -> g.file.setShareability(0, PAGE, Shareability.PRIVATE));
    c.checkEquals(seq, g.file.shareabilitySequence(), "shareability sequence after the refused conversion");
  }

}
