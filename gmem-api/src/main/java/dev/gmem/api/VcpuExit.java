package dev.gmem.api;

import java.util.Arrays;
import java.util.Objects;

/**
 * Why {@link Vcpu#run()} returned: one record per {@code KVM_EXIT_*} reason a user-space VMM
 * handles, decoded from {@code struct kvm_run}. Reasons gmem does not decode arrive as
 * {@link Other}.
 *
 * <p>Records holding arrays copy them on construction and on access, so every exit is an
 * immutable value with content-based {@code equals}.
 *
 * <p><b>Stability.</b> The interface is EXPERIMENTAL because it is sealed: every exit reason gmem
 * learns to decode (as {@link Hypercall} in 0.2) breaks a {@code switch} over it that has no
 * {@code default}. Write such switches with a default branch. Each record is as stable as its
 * own annotation says.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
public sealed interface VcpuExit
    permits VcpuExit.Io,
        VcpuExit.Mmio,
        VcpuExit.Hlt,
        VcpuExit.MemoryFault,
        VcpuExit.InternalError,
        VcpuExit.Shutdown,
        VcpuExit.FailEntry,
        VcpuExit.SystemEvent,
        VcpuExit.Hypercall,
        VcpuExit.GuestException,
        VcpuExit.Other {

  /**
   * Port I/O ({@code KVM_EXIT_IO}). For OUT, {@code data} holds the bytes the guest wrote; for IN
   * it is a zero buffer of the right length, and the VMM answers with {@link Vcpu#completeIn}
   * before the next run.
   *
   * @param out   true for OUT/OUTS, false for IN/INS
   * @param port  I/O port, 0..0xffff
   * @param size  bytes per element: 1, 2 or 4
   * @param count elements (more than 1 for string I/O)
   * @param data  {@code size * count} bytes, elements in guest (little-endian) order
   */
  @Api(status = Api.Status.STABLE, since = "0.1")
  record Io(boolean out, int port, int size, int count, byte[] data) implements VcpuExit {
    public Io {
      if (data == null || data.length != size * count) {
        throw new IllegalArgumentException("data must hold size*count = " + size * count + " bytes");
      }
      data = data.clone();
    }

    @Override
    public byte[] data() {
      return data.clone();
    }

    /** Element 0 as an unsigned little-endian value (the whole transfer for non-string I/O). */
    public long value() {
      return littleEndian(data, 0, size);
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Io && ((Io) o).out == out && ((Io) o).port == port && ((Io) o).size == size
          && ((Io) o).count == count && Arrays.equals(((Io) o).data, data);
    }

    @Override
    public int hashCode() {
      return Objects.hash(out, port, size, count) * 31 + Arrays.hashCode(data);
    }

    @Override
    public String toString() {
      return String.format("Io[%s port=0x%x size=%d count=%d data=%s]", out ? "out" : "in", port, size, count, hex(data));
    }
  }

  /**
   * A guest access to a GPA with no usable memory behind it ({@code KVM_EXIT_MMIO}). For a read
   * the VMM answers with {@link Vcpu#completeMmioRead} before the next run.
   *
   * @param gpa    guest physical address
   * @param write  true for a store
   * @param length access width in bytes, 1..8
   * @param data   for a write, the stored value (little-endian, {@code length} bytes); 0 for a read
   */
  @Api(status = Api.Status.STABLE, since = "0.1")
  record Mmio(long gpa, boolean write, int length, long data) implements VcpuExit {
    @Override
    public String toString() {
      return String.format("Mmio[%s gpa=0x%x length=%d data=0x%x]", write ? "write" : "read", gpa, length, data);
    }
  }

  /** The guest executed HLT; with no in-kernel irqchip the kernel hands HLT to user space. */
  @Api(status = Api.Status.STABLE, since = "0.1")
  record Hlt() implements VcpuExit {}

  /**
   * KVM could not resolve a guest access to guest_memfd-backed memory ({@code KVM_EXIT_MEMORY_FAULT},
   * reported with {@code KVM_RUN} = -1/EFAULT or EHWPOISON). Typically the GPA's
   * private/shared attribute does not match the memory the VMM provided.
   *
   * @param flags {@code KVM_MEMORY_EXIT_FLAG_*} bits, see {@link #FLAG_PRIVATE} and {@link #FLAG_USERFAULT}
   * @param gpa   start of the faulting range
   * @param size  length of the faulting range in bytes
   */
  @Api(status = Api.Status.STABLE, since = "0.1")
  record MemoryFault(long flags, long gpa, long size) implements VcpuExit {
    /** {@code KVM_MEMORY_EXIT_FLAG_PRIVATE}: the access was to private memory. */
    public static final long FLAG_PRIVATE = 1L << 3;
    /** {@code KVM_MEMORY_EXIT_FLAG_USERFAULT} (proposed): the page is registered for user-space fault handling. */
    @Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
    public static final long FLAG_USERFAULT = 1L << 4;

    public boolean isPrivate() {
      return (flags & FLAG_PRIVATE) != 0;
    }

    @Override
    public String toString() {
      return String.format("MemoryFault[flags=0x%x gpa=0x%x size=0x%x]", flags, gpa, size);
    }
  }

  /**
   * KVM hit a condition it cannot handle ({@code KVM_EXIT_INTERNAL_ERROR}), for example an
   * instruction it could not emulate ({@link #SUBERROR_EMULATION}).
   *
   * @param suberror {@code KVM_INTERNAL_ERROR_*}
   * @param data     the {@code ndata} diagnostic words KVM supplied
   */
  @Api(status = Api.Status.STABLE, since = "0.1")
  record InternalError(int suberror, long[] data) implements VcpuExit {
    /** {@code KVM_INTERNAL_ERROR_EMULATION}. */
    public static final int SUBERROR_EMULATION = 1;
    /** {@code KVM_INTERNAL_ERROR_SIMUL_EX}: an exception while delivering another. */
    public static final int SUBERROR_SIMUL_EX = 2;
    /** {@code KVM_INTERNAL_ERROR_DELIVERY_EV}: an exit while delivering an event. */
    public static final int SUBERROR_DELIVERY_EV = 3;
    /** {@code KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON}. */
    public static final int SUBERROR_UNEXPECTED_EXIT_REASON = 4;

    public InternalError {
      data = data.clone();
    }

    @Override
    public long[] data() {
      return data.clone();
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof InternalError && ((InternalError) o).suberror == suberror && Arrays.equals(((InternalError) o).data, data);
    }

    @Override
    public int hashCode() {
      return suberror * 31 + Arrays.hashCode(data);
    }

    @Override
    public String toString() {
      StringBuilder b = new StringBuilder("InternalError[suberror=").append(suberror).append(" data=[");
      for (int i = 0; i < data.length; i++) {
        b.append(i == 0 ? "0x" : ", 0x").append(Long.toHexString(data[i]));
      }
      return b.append("]]").toString();
    }
  }

  /** The guest triple-faulted ({@code KVM_EXIT_SHUTDOWN}); the vCPU must be reset before it runs again. */
  @Api(status = Api.Status.STABLE, since = "0.1")
  record Shutdown() implements VcpuExit {}

  /**
   * The hardware refused to enter the guest ({@code KVM_EXIT_FAIL_ENTRY}), usually an invalid
   * register state.
   *
   * @param hardwareReason {@code hardware_entry_failure_reason}, vendor specific
   */
  @Api(status = Api.Status.STABLE, since = "0.1")
  record FailEntry(long hardwareReason) implements VcpuExit {}

  /**
   * A VM-wide event ({@code KVM_EXIT_SYSTEM_EVENT}).
   *
   * @param type {@link #SHUTDOWN}, {@link #RESET}, {@link #CRASH} or another {@code KVM_SYSTEM_EVENT_*}
   */
  @Api(status = Api.Status.STABLE, since = "0.1")
  record SystemEvent(int type) implements VcpuExit {
    public static final int SHUTDOWN = 1;
    public static final int RESET = 2;
    public static final int CRASH = 3;
  }

  /**
   * A hypercall the VMM must complete ({@code KVM_EXIT_HYPERCALL}): with
   * {@code KVM_CAP_EXIT_HYPERCALL} enabled for it, {@link #MAP_GPA_RANGE} is how a guest asks for
   * a private/shared conversion (TDX MapGPA and SNP page-state changes arrive this way too, in
   * chunks). The VMM converts (or refuses) and answers with {@link Vcpu#completeHypercall} on a
   * real vCPU, {@link GuestCall#complete} on the software vCPU; a non-zero answer fails the guest's
   * request.
   *
   * @param nr    the hypercall number ({@code hypercall.nr})
   * @param args  {@code hypercall.args[0..5]}
   * @param flags {@code hypercall.flags}, see {@link #FLAG_LONG_MODE}
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  record Hypercall(long nr, long[] args, long flags) implements VcpuExit {
    /** {@code KVM_HC_MAP_GPA_RANGE}: args = gpa, number of pages, attributes. */
    public static final long MAP_GPA_RANGE = 12;
    /** {@code KVM_MAP_GPA_RANGE_ENCRYPTED}: the guest wants the range private. */
    public static final long ENCRYPTED = 1L << 4;
    /** {@code KVM_MAP_GPA_RANGE_DECRYPTED}: the guest wants the range shared. */
    public static final long DECRYPTED = 0;
    /** {@code KVM_MAP_GPA_RANGE_PAGE_SZ_2M} (a hint; 4 KiB when neither size bit is set). */
    public static final long PAGE_SZ_2M = 1L << 0;
    /** {@code KVM_MAP_GPA_RANGE_PAGE_SZ_1G}. */
    public static final long PAGE_SZ_1G = 1L << 1;
    /** {@code KVM_EXIT_HYPERCALL_LONG_MODE}: the guest was in 64-bit mode. */
    public static final long FLAG_LONG_MODE = 1L << 0;
    /** {@code KVM_ENOSYS}: what the guest reads for a hypercall nobody handles (negated). */
    public static final long KVM_ENOSYS = 1000;
    /** {@code KVM_EINVAL} (negated in the guest's return value). */
    public static final long KVM_EINVAL = 22;
    /** The number of argument registers {@code kvm_run} carries. */
    public static final int MAX_ARGS = 6;

    public Hypercall {
      if (args.length > MAX_ARGS) {
        throw new IllegalArgumentException("a hypercall carries at most " + MAX_ARGS + " arguments");
      }
      args = Arrays.copyOf(args, MAX_ARGS);
    }

    /** A {@link #MAP_GPA_RANGE} exit as KVM builds it (64-bit guest). */
    public static Hypercall mapGpaRange(long gpa, long npages, long attributes) {
      return new Hypercall(MAP_GPA_RANGE, new long[] {gpa, npages, attributes}, FLAG_LONG_MODE);
    }

    @Override
    public long[] args() {
      return args.clone();
    }

    /** Argument {@code i}. */
    public long arg(int i) {
      return args[i];
    }

    public boolean isMapGpaRange() {
      return nr == MAP_GPA_RANGE;
    }

    /** For {@link #MAP_GPA_RANGE}: the first GPA. */
    public long gpa() {
      return args[0];
    }

    /** For {@link #MAP_GPA_RANGE}: the number of 4 KiB pages. */
    public long npages() {
      return args[1];
    }

    /** For {@link #MAP_GPA_RANGE}: whether the guest asks for private (encrypted) memory. */
    public boolean toPrivate() {
      return (args[2] & ENCRYPTED) != 0;
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Hypercall h && h.nr == nr && h.flags == flags && Arrays.equals(h.args, args);
    }

    @Override
    public int hashCode() {
      return Long.hashCode(nr) * 31 + Arrays.hashCode(args) + Long.hashCode(flags);
    }

    @Override
    public String toString() {
      if (isMapGpaRange()) {
        return String.format("Hypercall[MAP_GPA_RANGE gpa=0x%x npages=%d %s flags=0x%x]", gpa(), npages(), toPrivate() ? "encrypted" : "decrypted", flags);
      }
      StringBuilder b = new StringBuilder("Hypercall[nr=").append(nr).append(" args=[");
      for (int i = 0; i < args.length; i++) {
        b.append(i == 0 ? "0x" : ", 0x").append(Long.toHexString(args[i]));
      }
      return b.append("] flags=0x").append(Long.toHexString(flags)).append(']').toString();
    }
  }

  /**
   * A guest access raised an architectural exception the arch defines for guest memory — TDX's
   * EPT-violation #VE on a private page the guest has not accepted, SNP's #VC on an unvalidated
   * page or a double validation — reported to the caller of the software vCPU, which delivers it
   * to its guest model. Nothing was accessed. (A real vCPU delivers such exceptions inside the
   * guest; KVM reports only the ones it cannot, as {@code KVM_EXIT_EXCEPTION}.)
   *
   * @param vector    the exception vector, e.g. {@link #VE} or {@link #VC}
   * @param errorCode the arch's error or exit-qualification code
   * @param gpa       the guest physical address of the access
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  record GuestException(int vector, long errorCode, long gpa) implements VcpuExit {
    /** {@code #VE}, virtualization exception (TDX). */
    public static final int VE = 20;
    /** {@code #VC}, VMM communication exception (SEV-ES/SNP). */
    public static final int VC = 29;

    @Override
    public String toString() {
      return String.format("GuestException[vector=%d errorCode=0x%x gpa=0x%x]", vector, errorCode, gpa);
    }
  }

  /**
   * Any other exit, by its raw {@code KVM_EXIT_*} number. {@link #INTR} also reports a
   * {@code KVM_RUN} that the kernel cut short (EINTR: a signal arrived or an immediate exit was
   * requested; EAGAIN): nothing happened in the guest, and the VMM simply runs again when it
   * is ready.
   *
   * @param exitReason the {@code exit_reason} field of {@code struct kvm_run}
   */
  @Api(status = Api.Status.STABLE, since = "0.1")
  record Other(int exitReason) implements VcpuExit {
    /** {@code KVM_EXIT_INTR}. */
    public static final int INTR = 10;

    public boolean interrupted() {
      return exitReason == INTR;
    }
  }

  private static long littleEndian(byte[] b, int from, int length) {
    long v = 0;
    for (int i = Math.min(Math.min(length, 8), b.length - from) - 1; i >= 0; i--) {
      v = (v << 8) | (b[from + i] & 0xffL);
    }
    return v;
  }

  private static String hex(byte[] b) {
    StringBuilder s = new StringBuilder();
    for (byte x : b) {
      s.append(String.format("%02x", x & 0xff));
    }
    return s.toString();
  }
}
