package dev.gmem.core.vm;

import dev.gmem.api.Registers;
import dev.gmem.api.SpecialRegisters;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;

/**
 * A backend vCPU as its VM hands it out: every call but {@code close} first checks that the VM
 * is alive, since after {@code KVM_BUG_ON} every vCPU ioctl fails with EIO.
 */
final class VmVcpu implements Vcpu {
  private final Vcpu vcpu;
  private final Runnable checkLive;

  VmVcpu(Vcpu vcpu, Runnable checkLive) {
    this.vcpu = vcpu;
    this.checkLive = checkLive;
  }

  @Override
  public int id() {
    return vcpu.id();
  }

  @Override
  public VcpuExit run() {
    checkLive.run();
    return vcpu.run();
  }

  @Override
  public Registers registers() {
    checkLive.run();
    return vcpu.registers();
  }

  @Override
  public void setRegisters(Registers registers) {
    checkLive.run();
    vcpu.setRegisters(registers);
  }

  @Override
  public SpecialRegisters specialRegisters() {
    checkLive.run();
    return vcpu.specialRegisters();
  }

  @Override
  public void setSpecialRegisters(SpecialRegisters registers) {
    checkLive.run();
    vcpu.setSpecialRegisters(registers);
  }

  @Override
  public void completeIn(byte[] data) {
    checkLive.run();
    vcpu.completeIn(data);
  }

  @Override
  public void completeMmioRead(long data) {
    checkLive.run();
    vcpu.completeMmioRead(data);
  }

  @Override
  public void completeHypercall(long ret) {
    checkLive.run();
    vcpu.completeHypercall(ret);
  }

  @Override
  public void kick() {
    checkLive.run();
    vcpu.kick();
  }

  @Override
  public boolean isOpen() {
    return vcpu.isOpen();
  }

  @Override
  public void close() {
    vcpu.close();
  }

  @Override
  public String toString() {
    return vcpu.toString();
  }
}
