package dev.gmem.core.vcpu;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.MapFlags;
import dev.gmem.api.Prot;
import dev.gmem.api.Registers;
import dev.gmem.api.SpecialRegisters;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Kvm;
import dev.gmem.core.sys.KvmStructs;
import dev.gmem.core.sys.RegisterCodec;
import dev.gmem.core.sys.Mapping;
import dev.gmem.core.sys.Sys;
import java.nio.ByteBuffer;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A real KVM vCPU: the vCPU fd plus its mapped {@code struct kvm_run}, both owned here.
 *
 * <p>Single-threaded by contract (see {@link Vcpu}): the register structs and the pending-exit
 * state are reused without locks, and a small state word rejects a second thread instead of
 * letting it corrupt them. {@code close()} from another thread during {@code KVM_RUN} is deferred
 * until that call returns, because unmapping kvm_run under the decoder would crash the JVM.
 *
 * <p>{@link #kick()} is the exception to the one-thread rule: it sets {@code immediate_exit} and
 * sends {@link #KICK_SIGNAL} to the thread inside {@code KVM_RUN}, whose kernel id the running
 * thread publishes. It serialises with the release of kvm_run on {@code kickLock}.
 */
public final class KvmVcpu implements Vcpu {
  private static final int IDLE = 0;
  private static final int BUSY = 1;
  private static final int CLOSE_PENDING = 2;
  private static final int CLOSED = 3;

  /** What a read nobody answered returns: the PC's floating bus. */
  private static final byte UNANSWERED = (byte) 0xff;

  /**
   * SIGPIPE: HotSpot installs a handler that ignores it, so sending it to a thread in
   * {@code KVM_RUN} makes the ioctl return EINTR and does nothing else (QEMU uses a signal of its
   * own, SIG_IPI, the same way). Checked before use: without a handler it would kill the process.
   */
  static final int KICK_SIGNAL = 13;

  /** The calling thread's kernel id, asked once per thread. */
  private static final ThreadLocal<int[]> TID = new ThreadLocal<>();

  private final Kvm kvm;
  private final int id;
  private final Fd fd;
  private final Mapping runMapping;
  private final ByteBuffer run;
  private final ExitDecoder decoder;
  private final KvmStructs.Regs regs;
  private final KvmStructs.Sregs sregs;
  private final VcpuGate gate;
  private final AtomicInteger state = new AtomicInteger(IDLE);

  /** Offset/length of the data of an IN exit not yet answered; -1 when none. */
  private int pendingInOffset = -1;
  private int pendingInLength;
  private boolean pendingMmioRead;
  private boolean pendingHypercall;

  private final Object kickLock = new Object();
  /** Kernel id of the thread inside KVM_RUN, 0 when none. */
  private volatile int runningTid;
  /** Under kickLock: kvm_run is unmapped. */
  private boolean released;

  private KvmVcpu(Kvm kvm, int id, Fd fd, Mapping runMapping, VcpuGate gate) {
    this.kvm = kvm;
    this.gate = gate;
    this.id = id;
    this.fd = fd;
    this.runMapping = runMapping;
    this.run = Sys.buffer(runMapping.address(), Math.toIntExact(runMapping.length()));
    this.decoder = new ExitDecoder(run);
    Sys sys = kvm.sys();
    this.regs = KvmStructs.allocate(sys, new KvmStructs.Regs(sys.runtime()));
    this.sregs = KvmStructs.allocate(sys, new KvmStructs.Sregs(sys.runtime()));
  }

  /**
   * {@code KVM_CREATE_VCPU} on {@code vm} and a shared mapping of its kvm_run area
   * ({@code KVM_GET_VCPU_MMAP_SIZE} bytes, asked of {@code kvmDevice}). The vCPU owns neither
   * {@code kvmDevice} nor {@code vm}: the caller closes those (a vCPU fd keeps its VM alive in
   * the kernel, so the order is not critical, but a VMM normally closes vCPUs first).
   *
   * @throws GmemException EEXIST if {@code id} was already created in this VM (even if that vCPU
   *     was closed: KVM frees vCPUs only with the VM), EINVAL for an id out of range
   */
  public static KvmVcpu create(Kvm kvm, Fd kvmDevice, Fd vm, int id) {
    return create(kvm, kvmDevice, vm, id, VcpuGate.OPEN);
  }

  /** {@link #create(Kvm, Fd, Fd, int)} for a vCPU whose every ioctl passes {@code gate} first. */
  public static KvmVcpu create(Kvm kvm, Fd kvmDevice, Fd vm, int id, VcpuGate gate) {
    int size = kvm.vcpuMmapSize(kvmDevice);
    Fd fd = kvm.createVcpu(vm, id);
    try {
      long address = kvm.sys().mmap(0, size, Prot.READ_WRITE, MapFlags.SHARED, fd.get(), 0);
      return new KvmVcpu(kvm, id, fd, new Mapping(kvm.sys(), address, size), gate);
    } catch (RuntimeException | Error e) {
      fd.close();
      throw e;
    }
  }

  @Override
  public int id() {
    return id;
  }

  /**
   * One {@code KVM_RUN}. EINTR and EAGAIN are not retried: the kernel returns them when a signal
   * or an immediate-exit request wants the thread back (EAGAIN also for a vCPU still waiting for
   * a SIPI), so they surface as {@code Other(INTR)} and the caller decides whether to run again.
   */
  @Override
  public VcpuExit run() {
    enterGated(true);
    try {
      fillUnansweredReads();
      runningTid = tid(kvm.sys());
      try {
        kvm.run(fd);
      } catch (GmemException e) {
        return failedRun(e);
      } finally {
        runningTid = 0;
      }
      VcpuExit exit = decoder.decode();
      rememberPendingRead(exit);
      return exit;
    } finally {
      leaveGated();
    }
  }

  private VcpuExit failedRun(GmemException e) {
    int errno = e.rawErrno();
    // exit_reason is only meaningful for these two errnos; for any other it is stale.
    if ((errno == Errno.EFAULT.code() || errno == Errno.EHWPOISON.code()) && decoder.exitReason() == Kvm.Run.EXIT_MEMORY_FAULT) {
      return decoder.memoryFault();
    }
    if (errno == Errno.EINTR.code() || errno == Errno.EAGAIN.code()) {
      // This run took any kick made so far; a kick racing with this clear is coalesced into it.
      run.put(Kvm.Run.IMMEDIATE_EXIT, (byte) 0);
      return new VcpuExit.Other(VcpuExit.Other.INTR);
    }
    throw e;
  }

  private void rememberPendingRead(VcpuExit exit) {
    if (exit instanceof VcpuExit.Io && !((VcpuExit.Io) exit).out()) {
      pendingInOffset = decoder.ioDataOffset();
      pendingInLength = decoder.ioLength();
    } else if (exit instanceof VcpuExit.Mmio && !((VcpuExit.Mmio) exit).write()) {
      pendingMmioRead = true;
    } else if (exit instanceof VcpuExit.Hypercall) {
      // The kernel presets ret only on some paths (TDX, for QEMU); make an unanswered call return 0 everywhere.
      run.putLong(Kvm.Run.HYPERCALL_RET, 0);
      pendingHypercall = true;
    }
  }

  /** The kernel completes a read exit on the next KVM_RUN whatever the buffer holds; make that defined. */
  private void fillUnansweredReads() {
    if (pendingInOffset >= 0) {
      for (int i = 0; i < pendingInLength; i++) {
        run.put(pendingInOffset + i, UNANSWERED);
      }
      pendingInOffset = -1;
    }
    if (pendingMmioRead) {
      run.putLong(Kvm.Run.MMIO_DATA, -1L);
      pendingMmioRead = false;
    }
    pendingHypercall = false;
  }

  @Override
  public void completeIn(byte[] data) {
    Objects.requireNonNull(data, "data");
    enter();
    try {
      if (pendingInOffset < 0) {
        throw new IllegalStateException("vCPU " + id + ": no IN exit waiting for data");
      }
      if (data.length != pendingInLength) {
        throw new IllegalArgumentException("IN exit wants " + pendingInLength + " bytes, got " + data.length);
      }
      run.put(pendingInOffset, data);
      pendingInOffset = -1;
    } finally {
      leave();
    }
  }

  @Override
  public void completeMmioRead(long data) {
    enter();
    try {
      if (!pendingMmioRead) {
        throw new IllegalStateException("vCPU " + id + ": no MMIO read waiting for data");
      }
      run.putLong(Kvm.Run.MMIO_DATA, data);
      pendingMmioRead = false;
    } finally {
      leave();
    }
  }

  @Override
  public void completeHypercall(long ret) {
    enter();
    try {
      if (!pendingHypercall) {
        throw new IllegalStateException("vCPU " + id + ": no hypercall exit waiting for a return value");
      }
      run.putLong(Kvm.Run.HYPERCALL_RET, ret);
      pendingHypercall = false;
    } finally {
      leave();
    }
  }

  /**
   * immediate_exit first, then the signal: a thread about to enter KVM_RUN sees the flag, one in
   * the guest is interrupted by the signal. The flag stays set until a run returns EINTR, so a
   * kick between two runs stops the next one.
   */
  @Override
  public void kick() {
    synchronized (kickLock) {
      if (released) {
        throw new GmemException(Errno.EBADF, "vCPU " + id + " is closed");
      }
      if (!kickSignalHandled(kvm.sys())) {
        throw new GmemException(Errno.EOPNOTSUPP, "no handler for signal " + KICK_SIGNAL + " in this JVM: a kick would kill the process");
      }
      run.put(Kvm.Run.IMMEDIATE_EXIT, (byte) 1);
      java.lang.invoke.VarHandle.fullFence();
      int tid = runningTid;
      if (tid != 0) {
        kvm.sys().tgkill(tid, KICK_SIGNAL);
      }
    }
  }

  private static volatile Boolean kickSignalHandled;

  /** Whether the JVM handles {@link #KICK_SIGNAL}; asked once (HotSpot installs its handlers at startup). */
  private static boolean kickSignalHandled(Sys sys) {
    Boolean h = kickSignalHandled;
    if (h == null) {
      h = sys.signalHandled(KICK_SIGNAL);
      kickSignalHandled = h;
    }
    return h;
  }

  private static int tid(Sys sys) {
    int[] t = TID.get();
    if (t == null) {
      t = new int[] {sys.gettid()};
      TID.set(t);
    }
    return t[0];
  }

  @Override
  public Registers registers() {
    enterGated(false);
    try {
      kvm.getRegs(fd, regs);
      return RegisterCodec.read(regs);
    } finally {
      leaveGated();
    }
  }

  @Override
  public void setRegisters(Registers registers) {
    Objects.requireNonNull(registers, "registers");
    enterGated(false);
    try {
      RegisterCodec.write(registers, regs);
      kvm.setRegs(fd, regs);
    } finally {
      leaveGated();
    }
  }

  @Override
  public SpecialRegisters specialRegisters() {
    enterGated(false);
    try {
      kvm.getSregs(fd, sregs);
      return RegisterCodec.read(sregs);
    } finally {
      leaveGated();
    }
  }

  @Override
  public void setSpecialRegisters(SpecialRegisters registers) {
    Objects.requireNonNull(registers, "registers");
    enterGated(false);
    try {
      RegisterCodec.write(registers, sregs);
      kvm.setSregs(fd, sregs);
    } finally {
      leaveGated();
    }
  }

  @Override
  public boolean isOpen() {
    return state.get() < CLOSE_PENDING;
  }

  @Override
  public void close() {
    while (true) {
      int s = state.get();
      if (s == IDLE && state.compareAndSet(IDLE, CLOSED)) {
        release();
        return;
      }
      if (s == BUSY && state.compareAndSet(BUSY, CLOSE_PENDING)) {
        return; // the busy thread releases in leave()
      }
      if (s >= CLOSE_PENDING) {
        return;
      }
    }
  }

  private void enter() {
    if (state.compareAndSet(IDLE, BUSY)) {
      return;
    }
    if (state.get() >= CLOSE_PENDING) {
      throw new GmemException(Errno.EBADF, "vCPU " + id + " is closed");
    }
    throw new IllegalStateException("vCPU " + id + " is in use by another thread; a vCPU belongs to one thread at a time");
  }

  /** {@link #enter()}, then the VM's gate for an ioctl ({@code run}: KVM_RUN); undone by {@link #leaveGated()}. */
  private void enterGated(boolean run) {
    enter();
    try {
      gate.enter(run);
    } catch (RuntimeException | Error e) {
      leave();
      throw e;
    }
  }

  private void leaveGated() {
    try {
      gate.leave();
    } finally {
      leave();
    }
  }

  private void leave() {
    if (!state.compareAndSet(BUSY, IDLE) && state.compareAndSet(CLOSE_PENDING, CLOSED)) {
      release();
    }
  }

  private void release() {
    synchronized (kickLock) {
      released = true;
      try {
        runMapping.close();
      } finally {
        fd.close();
      }
    }
  }

  @Override
  public String toString() {
    return "KvmVcpu[id=" + id + ", " + fd + ", kvm_run " + runMapping + (isOpen() ? "" : ", closed") + "]";
  }
}
