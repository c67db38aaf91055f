package dev.gmem.userfault;

import dev.gmem.api.Api;
import dev.gmem.api.Vm;
import dev.gmem.api.VcpuExit;
import java.nio.ByteBuffer;
import java.time.Duration;

/**
 * The userfault feature's API, reached through {@code runtime.feature(Userfault.class)}.
 *
 * <p><b>KVM Userfault memslots</b> (v3 semantics): set {@link #MEM_USERFAULT} on a guest_memfd
 * memslot — at creation or late, by re-issuing {@code Vm.setMemoryRegion} with only that bit
 * changed — and give the slot a {@linkplain #bitmap bitmap}. While the flag is set, a vCPU access
 * (software or real) to a page whose bit is set and that no vCPU access mapped since the flag was
 * last set exits as {@link VcpuExit.MemoryFault} with {@link #EXIT_FLAG_USERFAULT}; guest mappings
 * are 4 KiB only; setting the flag zaps them, clearing it lifts both. Resolve with
 * {@link #install} (data first, then the bit cleared with release semantics).
 *
 * <p><b>Async userfault</b>: any non-vCPU access to a page whose bit is set — the GPA view, host
 * mappings' accessors, pins — waits for the bit to clear, at most {@link #deadline()}, then fails
 * with EIO. No exit, no hang, and never a zero page in place of missing content.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public interface Userfault {
  /** {@code KVM_MEM_USERFAULT}. */
  int MEM_USERFAULT = 1 << 3;
  /** {@code KVM_MEMORY_EXIT_FLAG_USERFAULT}. */
  long EXIT_FLAG_USERFAULT = VcpuExit.MemoryFault.FLAG_USERFAULT;

  /**
   * The userfault bitmap of memslot {@code slot} of {@code vm}, created with every bit clear on
   * first use and kept while the slot exists. EINVAL when the VM has no such memslot.
   */
  UserfaultBitmap bitmap(Vm vm, int slot);

  /**
   * Installs {@code page} (4096 bytes from its position) as the content of the page at
   * {@code gpa} and then clears its bit — UFFDIO_COPY for a userfault page. EEXIST when the page's
   * bit is already clear (it is present), EINVAL for a GPA no bitmap covers.
   */
  void install(Vm vm, long gpa, ByteBuffer page);

  /**
   * Installs the run of {@code pages.remaining() / 4096} pages starting at {@code gpa} (from the
   * buffer's position): each stretch of still-missing pages is written with one GPA-view write (a
   * private stretch page by page, privately), then its bits are cleared with release semantics.
   * Pages whose bit is already clear are skipped — a late copy never overwrites what the guest
   * wrote since. Returns how many pages were installed. EINVAL for a length that is not a whole
   * number of pages or a run no single bitmap covers. Like {@link #install}, the caller serialises
   * installs of the same pages. The default installs page by page.
   */
  default int installRun(Vm vm, long gpa, ByteBuffer pages) {
    if (pages.remaining() % 4096 != 0) {
      throw dev.gmem.api.GmemException.einval("a run is whole 4096-byte pages, got " + pages.remaining() + " bytes");
    }
    int n = 0;
    for (int i = 0; i < pages.remaining() / 4096; i++) {
      if (isMissing(vm, gpa + i * 4096L)) {
        install(vm, gpa + i * 4096L, pages.duplicate().position(pages.position() + i * 4096));
        n++;
      }
    }
    return n;
  }

  /** Resolves the page at {@code gpa} as a page known to be zero: writes zeros, then clears its bit. EEXIST as for {@link #install}. */
  void installZero(Vm vm, long gpa);

  /**
   * Waits until the page at {@code gpa} is present — what a VMM does with a vCPU's USERFAULT exit
   * once it asked for the page — at most {@link #deadline()}: EIO when it does not arrive in time
   * or its supervisor reports that it cannot arrive.
   */
  void await(Vm vm, long gpa);

  /** Whether the page at {@code gpa} is still missing (its bit is set in the bitmap covering it). */
  boolean isMissing(Vm vm, long gpa);

  /**
   * How long an access waits for a missing page before it fails with EIO, on VMs whose
   * {@linkplain #supervise supervisor} does not set {@linkplain Supervisor#deadline its own}.
   */
  Duration deadline();

  /** Sets {@link #deadline()} (10 s at start); VMs whose supervisor sets a deadline keep theirs. */
  void deadline(Duration deadline);

  /**
   * Attaches the supervisor of {@code vm}'s missing pages (a page server): it hears of every fault
   * that meets a set bit, and a failure it reports fails waiting accesses at once. Null detaches.
   * EBUSY while another supervisor is attached.
   */
  void supervise(Vm vm, Supervisor supervisor);

  /** Fault counts and latency histograms. */
  FaultStats stats();

  /**
   * Whether the running kernel itself accepts {@code KVM_MEM_USERFAULT} on a guest_memfd memslot
   * (probed by behaviour: a scratch VM's {@code KVM_SET_USER_MEMORY_REGION2} with the flag and a
   * bitmap, beside a flagless control). Where it does, every memslot's flag and bitmap go to the
   * kernel and KVM produces real vCPUs' exits; 6.18 refuses it (EINVAL), and gmem implements the
   * semantics in user space (its stage-2 view).
   */
  boolean kernelUserfault();

  /** The probe's grounds for {@link #kernelUserfault()}, e.g. which call the kernel refused with which errno. */
  String kernelUserfaultProbe();

  /** The supervisor of a VM's missing pages. */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  interface Supervisor {
    /** A fault met the set bit of the page at {@code gpa}: request it urgently. Must not block. */
    void demanded(long gpa, FaultSource source);

    /** Why missing pages can no longer arrive (the source died, a fault timed out), or null. */
    String failure();

    /** A fault on {@code gpa} waited the whole deadline: the source stalled. */
    void stalled(long gpa);

    /**
     * How long a fault on this VM's missing pages waits before it fails with EIO — the page
     * source's own latency (a local snapshot, a source across the network) — or null for the
     * runtime-wide {@link Userfault#deadline()}. Read when the supervisor is attached: positive, or
     * EINVAL. A deadline per supervisor, so two VMs of one runtime fed by different sources never
     * change each other's.
     */
    default Duration deadline() {
      return null;
    }
  }
}
