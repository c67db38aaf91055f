package dev.gmem.core.vcpu;

import dev.gmem.api.VcpuExit;
import dev.gmem.core.sys.Kvm.Run;
import java.nio.ByteBuffer;

/**
 * Reads a {@code struct kvm_run} (x86_64) into {@link VcpuExit} values. Separate from the vCPU so
 * that exits this host never produces (MEMORY_FAULT, FAIL_ENTRY, ...) can be tested on a
 * synthetic buffer.
 */
final class ExitDecoder {
  private final ByteBuffer run;

  /** {@code run} is the mapped kvm_run area (native byte order), or a synthetic one in tests. */
  ExitDecoder(ByteBuffer run) {
    this.run = run;
  }

  int exitReason() {
    return run.getInt(Run.EXIT_REASON);
  }

  /** Decodes the exit of a successful {@code KVM_RUN}. */
  VcpuExit decode() {
    int reason = exitReason();
    switch (reason) {
      case Run.EXIT_IO:
        return io();
      case Run.EXIT_MMIO:
        return mmio();
      case Run.EXIT_HLT:
        return new VcpuExit.Hlt();
      case Run.EXIT_SHUTDOWN:
        return new VcpuExit.Shutdown();
      case Run.EXIT_INTERNAL_ERROR:
        return internalError();
      case Run.EXIT_FAIL_ENTRY:
        return new VcpuExit.FailEntry(run.getLong(Run.FAIL_ENTRY_REASON));
      case Run.EXIT_SYSTEM_EVENT:
        return new VcpuExit.SystemEvent(run.getInt(Run.SYSTEM_EVENT_TYPE));
      case Run.EXIT_MEMORY_FAULT:
        return memoryFault();
      case Run.EXIT_HYPERCALL:
        return hypercall();
      default:
        return new VcpuExit.Other(reason);
    }
  }

  VcpuExit.MemoryFault memoryFault() {
    return new VcpuExit.MemoryFault(
        run.getLong(Run.MEMORY_FAULT_FLAGS), run.getLong(Run.MEMORY_FAULT_GPA), run.getLong(Run.MEMORY_FAULT_SIZE));
  }

  private VcpuExit.Hypercall hypercall() {
    long[] args = new long[VcpuExit.Hypercall.MAX_ARGS];
    for (int i = 0; i < args.length; i++) {
      args[i] = run.getLong(Run.HYPERCALL_ARGS + 8 * i);
    }
    return new VcpuExit.Hypercall(run.getLong(Run.HYPERCALL_NR), args, run.getLong(Run.HYPERCALL_FLAGS));
  }

  /** Offset of the I/O data from the start of kvm_run, checked to lie inside the mapping. */
  int ioDataOffset() {
    long offset = run.getLong(Run.IO_DATA_OFFSET);
    long length = ioLength();
    if (offset < 0 || offset + length > run.capacity()) {
      throw new IllegalStateException("kvm_run io data [0x" + Long.toHexString(offset) + ", +" + length + ") outside the kvm_run mapping");
    }
    return (int) offset;
  }

  int ioLength() {
    return (run.get(Run.IO_SIZE) & 0xff) * run.getInt(Run.IO_COUNT);
  }

  private VcpuExit.Io io() {
    boolean out = run.get(Run.IO_DIRECTION) == Run.IO_OUT;
    int size = run.get(Run.IO_SIZE) & 0xff;
    int port = run.getShort(Run.IO_PORT) & 0xffff;
    int count = run.getInt(Run.IO_COUNT);
    byte[] data = new byte[size * count];
    if (out) {
      run.get(ioDataOffset(), data);
    }
    return new VcpuExit.Io(out, port, size, count, data);
  }

  private VcpuExit.Mmio mmio() {
    boolean write = run.get(Run.MMIO_IS_WRITE) != 0;
    int length = run.getInt(Run.MMIO_LEN);
    long data = 0;
    if (write) {
      // Only the low `length` bytes of data[8] are meaningful; the rest may be stale.
      long raw = run.getLong(Run.MMIO_DATA);
      data = length >= 8 ? raw : raw & ((1L << (8 * length)) - 1);
    }
    return new VcpuExit.Mmio(run.getLong(Run.MMIO_PHYS_ADDR), write, length, data);
  }

  private VcpuExit.InternalError internalError() {
    int ndata = Math.min(run.getInt(Run.INTERNAL_NDATA), Run.INTERNAL_DATA_MAX);
    long[] data = new long[Math.max(ndata, 0)];
    for (int i = 0; i < data.length; i++) {
      data[i] = run.getLong(Run.INTERNAL_DATA + 8 * i);
    }
    return new VcpuExit.InternalError(run.getInt(Run.INTERNAL_SUBERROR), data);
  }
}
