package dev.gmem.api;

/**
 * A virtual CPU of a {@link Vm}: on the kvm backend a real KVM vCPU fd with its mapped
 * {@code struct kvm_run}.
 *
 * <p><b>Threading.</b> A vCPU belongs to one thread at a time, as in KVM where every vCPU ioctl
 * takes the vCPU mutex and {@code KVM_RUN} should always come from the same task. Calling a method
 * while another thread is inside one fails with {@link IllegalStateException}; hand a vCPU to
 * another thread only with a happens-before edge (e.g. a queue). {@link #close()} is the one
 * exception: it may be called from any thread and, if the vCPU is busy, takes effect when the
 * busy call returns. It does not stop a running guest; {@link #kick()} (also callable from any
 * thread) does. Calls on a closed vCPU throw {@link GmemException} with EBADF; on a VM whose
 * context was moved away, EIO (a context move waits for calls in flight on both VMs' vCPUs, as
 * KVM locks every vCPU for it).
 *
 * <p><b>Exits that need an answer.</b> After an {@link VcpuExit.Io} IN exit call
 * {@link #completeIn}, after an {@link VcpuExit.Mmio} read call {@link #completeMmioRead}, after a
 * {@link VcpuExit.Hypercall} call {@link #completeHypercall}, then
 * {@link #run()} again: the kernel finishes the guest instruction with that data on the next
 * run. Unanswered reads return all-ones bytes, as unclaimed ports and addresses do on a PC.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public interface Vcpu extends AutoCloseable {

  /** The vCPU id given at creation ({@code KVM_CREATE_VCPU} argument, the initial APIC id). */
  int id();

  /**
   * Enters the guest ({@code KVM_RUN}) until an exit that needs user space. Returns
   * {@link VcpuExit.Other} with {@link VcpuExit.Other#INTR} when the kernel returned early
   * (EINTR/EAGAIN) and {@link VcpuExit.MemoryFault} for the -1/EFAULT memory-fault exit; other
   * {@code KVM_RUN} failures throw {@link GmemException} with the kernel's errno.
   */
  VcpuExit run();

  /** {@code KVM_GET_REGS}. */
  Registers registers();

  /** {@code KVM_SET_REGS}. */
  void setRegisters(Registers registers);

  /** {@code KVM_GET_SREGS}. */
  SpecialRegisters specialRegisters();

  /** {@code KVM_SET_SREGS}; the kernel validates the state (EINVAL for an inconsistent one). */
  void setSpecialRegisters(SpecialRegisters registers);

  /**
   * Supplies the bytes for the pending IN exit, {@code size * count} of them, in guest order.
   *
   * @throws IllegalStateException if the last exit was not an unanswered IN
   * @throws IllegalArgumentException if the length is wrong
   */
  void completeIn(byte[] data);

  /**
   * Supplies the value for the pending MMIO read, little-endian; only the low {@code length}
   * bytes reach the guest.
   *
   * @throws IllegalStateException if the last exit was not an unanswered MMIO read
   */
  void completeMmioRead(long data);

  /**
   * Supplies {@code kvm_run.hypercall.ret} for the pending {@link VcpuExit.Hypercall}; the guest
   * sees it (in {@code rax} for x86 KVM hypercalls) when it next runs. Unanswered, the kernel's
   * preset value (0) stands, as KVM presets it for QEMU.
   *
   * @throws IllegalStateException if the last exit was not an unanswered hypercall
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void completeHypercall(long ret) {
    throw new IllegalStateException("vCPU " + id() + ": no hypercall exit waiting for a return value");
  }

  /**
   * Makes the current or next {@link #run()} return {@link VcpuExit.Other#INTR} promptly: sets
   * {@code kvm_run.immediate_exit} and signals the thread inside {@code KVM_RUN}, so a guest
   * that never exits by itself can be stopped. Unlike every other method it is meant to be called
   * from another thread, any number of times; a kick consumed by a run does not carry over to the
   * one after. EBADF once the vCPU is closed.
   */
  @Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
  default void kick() {
    throw new GmemException(Errno.EOPNOTSUPP, "this vCPU cannot be kicked");
  }

  boolean isOpen();

  /** Unmaps {@code kvm_run} and closes the vCPU fd. Idempotent. KVM keeps the vCPU until its VM goes away. */
  @Override
  void close();
}
