package dev.gmem.core.sys;

import static org.junit.jupiter.api.Assertions.assertEquals;

import jnr.ffi.Runtime;
import jnr.ffi.Struct;
import org.junit.jupiter.api.Test;

class KvmStructsTest {
  private final Runtime rt = Runtime.getSystemRuntime();

  @Test
  void structSizesMatchTheSizesEncodedInTheirIoctlNumbers() {
    assertEquals(Ioc.sizeOf(Kvm.CREATE_GUEST_MEMFD), Struct.size(new KvmStructs.CreateGuestMemfd(rt)));
    assertEquals(Ioc.sizeOf(Kvm.SET_USER_MEMORY_REGION2), Struct.size(new KvmStructs.UserspaceMemoryRegion2(rt)));
    assertEquals(Ioc.sizeOf(Kvm.SET_MEMORY_ATTRIBUTES), Struct.size(new KvmStructs.MemoryAttributes(rt)));
    assertEquals(Ioc.sizeOf(Kvm.SET_MEMORY_ATTRIBUTES2), Struct.size(new KvmStructs.MemoryAttributes2(rt)));
    assertEquals(Ioc.sizeOf(Kvm.GET_REGS), Struct.size(new KvmStructs.Regs(rt)));
    assertEquals(Ioc.sizeOf(Kvm.SET_SREGS), Struct.size(new KvmStructs.Sregs(rt)));
    assertEquals(Ioc.sizeOf(Kvm.LINK_GUEST_MEMFD), Struct.size(new KvmStructs.LinkGuestMemfd(rt)));
  }

  @Test
  void ioctlNumbersMatchTheKernelHeaders() {
    assertEquals(0xC040AED4L, Kvm.CREATE_GUEST_MEMFD);
    assertEquals(0x40A0AE49L, Kvm.SET_USER_MEMORY_REGION2);
    assertEquals(0x4020AED2L, Kvm.SET_MEMORY_ATTRIBUTES);
    assertEquals(0x8090AE81L, Kvm.GET_REGS);
    assertEquals(0x4138AE84L, Kvm.SET_SREGS);
    assertEquals(0x0000AE80L, Kvm.RUN);
    assertEquals(0x0000AE03L, Kvm.CHECK_EXTENSION);
    assertEquals(0xC040AED6L, Kvm.LINK_GUEST_MEMFD, "RFC v2's _IOWR(KVMIO, 0xd6, struct kvm_link_guest_memfd)");
  }

  @Test
  void fieldOffsetsFollowTheUapiLayout() {
    KvmStructs.UserspaceMemoryRegion2 r = new KvmStructs.UserspaceMemoryRegion2(rt);
    assertEquals(8, r.guestPhysAddr.offset());
    assertEquals(24, r.userspaceAddr.offset());
    assertEquals(32, r.guestMemfdOffset.offset());
    assertEquals(40, r.guestMemfd.offset());
    KvmStructs.Sregs s = new KvmStructs.Sregs(rt);
    assertEquals(224, s.cr0.offset());
    assertEquals(264, s.efer.offset());
    assertEquals(128, new KvmStructs.Regs(rt).rip.offset());
    assertEquals(32, new KvmStructs.MemoryAttributes2(rt).errorOffset.offset());
  }
}
