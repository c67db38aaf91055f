package dev.gmem.core.vcpu;

import dev.gmem.api.Registers;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.SpecialRegisters;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.core.memslot.MemslotTable;
import dev.gmem.core.memslot.StageTwoView;

/**
 * A real vCPU whose guest faults on gmem memory follow the VM type's rule where the kernel cannot
 * apply it. On Linux 6.18 the kernel sees an INIT_SHARED guest_memfd as all shared and its vCPU
 * makes only shared accesses; where the arch's accesses carry their own private bit, gmem maps a
 * memslot's private pages out of its {@code userspace_addr}, and the kernel reports an access to
 * one as MMIO inside the slot (kernel-uapi §4.9). Such an exit is the guest fault the kernel could
 * not resolve: it goes through the software vCPU's fault path — as a shared access, or, where the
 * arch's private bit is a GPA bit (TDX's shared bit), as the kind that bit gives — and either
 * completes there (a page that became reachable in the meantime) or becomes the
 * {@link VcpuExit.MemoryFault} the rule gives, as {@code KVM_EXIT_MEMORY_FAULT} would.
 *
 * <p>The kernel has already emulated the instruction as an MMIO access, so the access is redone,
 * not retried: a faulting one stays pending, and the next {@link #run()} redoes it before
 * entering the guest — completing the read with the memory's bytes or storing the write — or
 * returns the exit again while the page is still not reachable. Exactly once, as on hardware.
 *
 * <p>Where the private bit is a GPA bit (TDX), the slot's view is its private stage 2: an access or
 * instruction fetch at a GPA without the bit is private and, once the rule lets it through, maps
 * the page for the kernel; a shared one never does.
 *
 * <p>Slots with a {@link StageTwoView} (a feature's memslot flag, e.g. KVM Userfault) come back the
 * same way for data accesses, and as an emulation failure for an instruction fetch from a zapped
 * page, whose GPA is the code segment base plus RIP, translated through the guest's page tables
 * where paging is on (4-level only). Either becomes a guest fault on gmem's path; once that lets
 * the access through, the page is mapped back in the view, as KVM installs a stage-2 entry, so
 * later accesses to it no longer leave the guest.
 */
public final class GuestFaultingVcpu implements Vcpu {
  private final Vcpu vcpu;
  private final MemslotTable memslots;
  private final SoftwareVcpu fault;
  /** The arch's GPA bit that marks a shared access ({@code ArchHooks.sharedGpaBit}), 0 if none. */
  private final long sharedBit;
  /** The access the kernel handed back and the rule refused, at its GPA without the shared bit; null when none. */
  private VcpuExit.Mmio pending;
  /** Whether {@link #pending} is a private access. */
  private boolean pendingPrivate;

  public GuestFaultingVcpu(Vcpu vcpu, MemslotTable memslots, SoftwareVcpu fault) {
    this(vcpu, memslots, fault, 0);
  }

  /**
   * @param sharedBit where the arch's private bit is a GPA bit (TDX's shared bit), that bit: an
   *     access without it is private, one with it is shared and resolves at the GPA without it
   */
  public GuestFaultingVcpu(Vcpu vcpu, MemslotTable memslots, SoftwareVcpu fault, long sharedBit) {
    this.vcpu = vcpu;
    this.memslots = memslots;
    this.fault = fault;
    this.sharedBit = sharedBit;
  }

  @Override
  public VcpuExit run() {
    while (true) {
      if (pending != null) {
        long seen = stageTwoSequence(pending.gpa());
        VcpuExit refused = redo(pending);
        if (refused != null) {
          return refused;
        }
        if (sharedBit == 0 || pendingPrivate) {
          mapBack(pending.gpa(), seen); // a private stage 2 never maps a page for a shared access
        }
        pending = null;
      }
      VcpuExit exit = vcpu.run();
      if (exit instanceof VcpuExit.InternalError ie && ie.suberror() == VcpuExit.InternalError.SUBERROR_EMULATION) {
        VcpuExit fetch = zappedFetch(exit);
        if (fetch != null) {
          return fetch;
        }
        continue;
      }
      if (!(exit instanceof VcpuExit.Mmio m) || m.length() > Long.BYTES) {
        return exit;
      }
      long gpa = m.gpa() & ~sharedBit;
      if (memslots.lookup(gpa) == null) {
        return exit;
      }
      pending = gpa == m.gpa() ? m : new VcpuExit.Mmio(gpa, m.write(), m.length(), m.data());
      pendingPrivate = sharedBit != 0 && (m.gpa() & sharedBit) == 0;
    }
  }

  /**
   * An emulation failure: if the instruction fetch hit a zapped page of a slot's stage-2 view, a
   * guest fault on it — its exit, or null once the page is mapped back and the guest may run
   * again; else {@code exit} itself.
   */
  private VcpuExit zappedFetch(VcpuExit exit) {
    long gpa;
    try {
      gpa = fetchGpa();
    } catch (FetchExit e) {
      return e.exit;
    }
    MemslotTable.Binding b = gpa < 0 ? null : memslots.binding(gpa);
    if (b == null || !(b.kernelView() instanceof StageTwoView view) || !view.isZapped((gpa - b.gpa()) >>> 12)) {
      return exit;
    }
    long seen = view.sequence();
    // On a TD every fetch is private: the TDX module never lets a TD execute shared memory.
    VcpuExit refused = fault.read(gpa, new byte[1], 0, 1, sharedBit != 0);
    if (refused != null) {
      return refused;
    }
    view.map((gpa - b.gpa()) >>> 12, seen);
    return null;
  }

  /** A guest fault met while walking the guest's page tables for the fetch address. */
  private static final class FetchExit extends RuntimeException {
    final VcpuExit exit;

    FetchExit(VcpuExit exit) {
      super(null, null, false, false);
      this.exit = exit;
    }
  }

  /** The GPA of the instruction at CS:RIP, or -1 where gmem does not walk this paging mode. */
  private long fetchGpa() {
    SpecialRegisters s = vcpu.specialRegisters();
    long linear = s.cs().base() + vcpu.registers().rip();
    if ((s.cr0() & SpecialRegisters.CR0_PG) == 0) {
      return linear & 0xffff_ffffL;
    }
    if ((s.efer() & SpecialRegisters.EFER_LMA) == 0) {
      return -1;
    }
    long table = s.cr3() & 0x000f_ffff_ffff_f000L;
    for (int level = 3; level >= 0; level--) {
      long entry = readGuestLong(table + 8 * ((linear >>> (12 + 9 * level)) & 0x1ff));
      if ((entry & 1) == 0) {
        return -1;
      }
      long frame = entry & 0x000f_ffff_ffff_f000L;
      if (level > 0 && level < 3 && (entry & 0x80) != 0) {
        long size = 1L << (12 + 9 * level);
        return (frame & -size) | (linear & (size - 1));
      }
      table = frame;
    }
    return table | (linear & 0xfff);
  }

  private long readGuestLong(long gpa) {
    byte[] b = new byte[Long.BYTES];
    VcpuExit e = fault.read(gpa, b, 0, b.length, false);
    if (e != null) {
      throw new FetchExit(e);
    }
    long v = 0;
    for (int i = 0; i < b.length; i++) {
      v |= (b[i] & 0xffL) << (8 * i);
    }
    return v;
  }

  /**
   * A pending access that went through: map its page back where the slot's view zapped it, unless
   * the view was invalidated since {@code seen} (punch, conversion: the access must fault again).
   */
  private void mapBack(long gpa, long seen) {
    MemslotTable.Binding b = memslots.binding(gpa);
    if (b != null && b.kernelView() instanceof StageTwoView view) {
      view.map((gpa - b.gpa()) >>> 12, seen);
    }
  }

  /** The invalidation count of the view of the slot holding {@code gpa}, or 0 without one. */
  private long stageTwoSequence(long gpa) {
    MemslotTable.Binding b = memslots.binding(gpa);
    return b != null && b.kernelView() instanceof StageTwoView view ? view.sequence() : 0;
  }

  /** The pending access through gmem's fault path; null once done, else the exit it raises. */
  private VcpuExit redo(VcpuExit.Mmio m) {
    byte[] bytes = new byte[m.length()];
    if (m.write()) {
      for (int i = 0; i < bytes.length; i++) {
        bytes[i] = (byte) (m.data() >>> (8 * i));
      }
      return fault.write(m.gpa(), bytes, 0, bytes.length, pendingPrivate);
    }
    VcpuExit e = fault.read(m.gpa(), bytes, 0, bytes.length, pendingPrivate);
    if (e != null) {
      return e;
    }
    long value = 0;
    for (int i = 0; i < bytes.length; i++) {
      value |= (bytes[i] & 0xffL) << (8 * i);
    }
    vcpu.completeMmioRead(value);
    return null;
  }

  @Override
  public int id() {
    return vcpu.id();
  }

  @Override
  public Registers registers() {
    return vcpu.registers();
  }

  @Override
  public void setRegisters(Registers registers) {
    vcpu.setRegisters(registers);
  }

  @Override
  public SpecialRegisters specialRegisters() {
    return vcpu.specialRegisters();
  }

  @Override
  public void setSpecialRegisters(SpecialRegisters registers) {
    vcpu.setSpecialRegisters(registers);
  }

  @Override
  public void completeIn(byte[] data) {
    vcpu.completeIn(data);
  }

  @Override
  public void completeMmioRead(long data) {
    vcpu.completeMmioRead(data);
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
