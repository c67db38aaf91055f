package dev.gmem.core.vcpu;

/**
 * What a VM lets its real vCPUs do now. Every vCPU ioctl passes through it, {@code KVM_RUN} for
 * its whole duration, so that a VM-wide change (the move of an encryption context) can wait for
 * calls in flight, as the kernel's {@code kvm_lock_all_vcpus} waits on each vCPU's mutex.
 */
public interface VcpuGate {

  /** Lets every call through: a vCPU of a VM with nothing to gate. */
  VcpuGate OPEN = new VcpuGate() {
    @Override
    public void enter(boolean run) {}

    @Override
    public void leave() {}
  };

  /**
   * Before a vCPU ioctl ({@code run} for {@code KVM_RUN}): throws the errno the kernel would return
   * on this VM now, else returns with the gate held until {@link #leave()}.
   */
  void enter(boolean run);

  void leave();
}
