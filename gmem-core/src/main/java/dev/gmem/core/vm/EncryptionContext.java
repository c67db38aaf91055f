package dev.gmem.core.vm;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.core.vcpu.VcpuGate;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.BooleanSupplier;

/**
 * A VM's side of {@code KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM}: whether its context was moved away
 * (the VM is then dead, as after {@code kvm_vm_dead}: EIO), the "migration in progress" mark two
 * moves race for, and the gate its real vCPUs pass. {@code KVM_RUN} is refused with EINVAL while
 * the VM waits for a context, i.e. holds a linked file no move has reached yet — what KVM answers
 * for a TD that is not finalized or an SEV VM that is not initialised.
 */
final class EncryptionContext implements VcpuGate {
  private final BooleanSupplier awaiting;
  private final java.util.function.Supplier<String> bugged;
  private final AtomicBoolean migrating = new AtomicBoolean();
  /** Held shared by every vCPU ioctl, KVM_RUN for its whole duration; a move holds it exclusive. */
  private final ReentrantReadWriteLock vcpus = new ReentrantReadWriteLock();
  private volatile boolean movedAway;
  /**
   * Moved away or bugged: the one flag the hot access paths read ({@link #checkAlive} runs on every
   * software-vCPU access), set before either reason becomes visible through its own field's checks.
   */
  private volatile boolean dead;
  /** The arch's {@code vcpu_pre_run}: throws while no vCPU of the VM may run. */
  private final Runnable preRun;
  /**
   * Dead, or the arch has not yet let a vCPU run: the one flag the vCPU paths read
   * ({@link #checkRunnable}); cleared once the arch lets them run, set again with {@link #dead}.
   */
  private volatile boolean vcpusHeld = true;
  /** Told each time vCPUs are held again (dead, moved away), after the flag is set. */
  private volatile Runnable onHeld = () -> {};

  /**
   * {@code awaiting}: whether the VM holds an open linked file still waiting for its context;
   * {@code bugged}: why the arch declared the VM dead ({@code KVM_BUG_ON}), or null.
   */
  EncryptionContext(BooleanSupplier awaiting, java.util.function.Supplier<String> bugged, Runnable preRun) {
    this.awaiting = awaiting;
    this.bugged = bugged;
    this.preRun = preRun;
  }

  /**
   * What a vCPU's run meets first: EIO on a dead VM, else the arch's refusal while no vCPU may run
   * yet ({@code vcpu_pre_run}). Runs before every software-vCPU access.
   */
  void checkRunnable() {
    if (vcpusHeld) {
      admitVcpus();
    }
  }

  private void admitVcpus() {
    checkAlive();
    preRun.run();
    vcpusHeld = false;
    if (dead) {
      vcpusHeld = true; // marked dead meanwhile: its write may have come before ours
    }
  }

  boolean movedAway() {
    return movedAway;
  }

  /** EIO once the context is gone or the arch hit {@code KVM_BUG_ON}, as every ioctl on a dead VM. */
  void checkAlive() {
    if (dead) {
      throwDead();
    }
  }

  /** The arch hit {@code KVM_BUG_ON}. */
  void markDead() {
    dead = true;
    vcpusHeld = true;
    onHeld.run();
  }

  /** Runs {@code r} each time vCPUs are held again, after {@link #runnable()} turned false. */
  void onHeld(Runnable r) {
    this.onHeld = r;
  }

  /** Whether a vCPU may run now, without admitting one: false until {@link #checkRunnable} admitted vCPUs, and once dead. */
  boolean runnable() {
    return !vcpusHeld;
  }

  private void throwDead() {
    if (movedAway) {
      throw new GmemException(Errno.EIO, "the VM's encryption context was moved to another VM: it is dead");
    }
    String bug = bugged.get();
    if (bug != null) {
      throw new GmemException(Errno.EIO, "the VM is dead (KVM_BUG_ON): " + bug);
    }
  }

  @Override
  public void enter(boolean run) {
    vcpus.readLock().lock();
    try {
      checkAlive();
      if (run) {
        checkRunnable();
      }
      if (run && awaiting.getAsBoolean()) {
        throw GmemException.einval("KVM_RUN before the encryption context was moved here (linked guest_memfd awaiting KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM)");
      }
    } catch (RuntimeException e) {
      vcpus.readLock().unlock();
      throw e;
    }
  }

  @Override
  public void leave() {
    vcpus.readLock().unlock();
  }

  /** {@code kvm_mark_migration_in_progress} for one VM: false if it is already in a move. */
  boolean beginMigration() {
    return migrating.compareAndSet(false, true);
  }

  void endMigration() {
    migrating.set(false);
  }

  /** Waits until no vCPU of the VM is inside an ioctl and keeps new ones out ({@code kvm_lock_all_vcpus}). */
  void lockVcpus() {
    vcpus.writeLock().lock();
  }

  void unlockVcpus() {
    vcpus.writeLock().unlock();
  }

  /** The commit's last word for the source: every later call fails with EIO. */
  void markMovedAway() {
    movedAway = true;
    dead = true;
    vcpusHeld = true;
    onHeld.run();
  }
}
