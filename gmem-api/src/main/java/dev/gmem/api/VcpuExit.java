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
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public sealed interface VcpuExit
    permits VcpuExit.Io,
        VcpuExit.Mmio,
        VcpuExit.Hlt,
        VcpuExit.MemoryFault,
        VcpuExit.InternalError,
        VcpuExit.Shutdown,
        VcpuExit.FailEntry,
        VcpuExit.SystemEvent,
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
