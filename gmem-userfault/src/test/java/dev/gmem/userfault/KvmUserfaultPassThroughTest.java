package dev.gmem.userfault;

import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostInfo;
import dev.gmem.api.Memslot;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.Feature;
import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.api.spi.KernelMemslot;
import dev.gmem.api.spi.Support;
import dev.gmem.core.conformance.Backends;
import dev.gmem.core.convert.TestRuntimes;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * {@code KVM_CAP_USERFAULT}: the behavioural probe's answer and grounds on this 6.18 host, and the
 * pass-through where a kernel has it — the flag and the bitmap reach the kernel through
 * {@code KVM_SET_USER_MEMORY_REGION2}. 6.18 has no such kernel, so the pass-through is shown by
 * forcing it: the real kernel then refuses the slot with the EINVAL the probe saw, and the failed
 * call changes nothing.
 */
class KvmUserfaultPassThroughTest {
  static final long PAGE = 4096;

  @Test
  void theProbeSaysAbsentBecauseTheFlagAloneWasRefusedWhileTheSameSlotWithoutItWasAccepted() {
    KvmUserfaultProbe.Result r = KvmUserfaultProbe.probe();
    assertFalse(r.present(), r.reason());
    assertEquals(0, r.control(), "the control binding (no flag, no bitmap) works here, so the refusal is the flag's: " + r.reason());
    assertEquals(Errno.EINVAL, Errno.of(r.flagged()), r.reason());
    assertTrue(r.reason().startsWith("absent: KVM_SET_USER_MEMORY_REGION2 refused KVM_MEM_USERFAULT"), r.reason());
    try (GmemRuntime rt = Backends.open("kvm")) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      assertFalse(uf.kernelUserfault());
      assertEquals(r.reason(), uf.kernelUserfaultProbe());
      String message = rt.plugins().plugins().stream().filter(d -> d.id().equals("userfault")).findFirst().orElseThrow().messageIfAny().orElseThrow();
      assertTrue(message.contains("in user space, gmem's stage-2 view (kernel probe: absent"), message);
    }
  }

  @Test
  void whereTheKernelImplementsTheFlagItGetsTheFlagAndTheBitmapAndGmemAddsNoView() {
    try (GmemRuntime rt = forcedPassThrough()) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      assertTrue(uf.kernelUserfault());
      Vm vm = rt.createVm(VmType.DEFAULT);
      GuestMemFile f = vm.createGuestMemFile(16 * PAGE, GmemFlags.MMAP | GmemFlags.INIT_SHARED);

      GmemException refused = assertThrows(GmemException.class,
          () -> vm.setMemoryRegion(0, Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT, 0, 16 * PAGE, f, 0));
      assertEquals(Errno.EINVAL, refused.errno());
      assertTrue(refused.getMessage().contains("KVM_SET_USER_MEMORY_REGION2"), "the kernel's refusal: " + refused.getMessage());
      assertEquals(List.of(), vm.memslots(), "the kernel refused bit 3 with its bitmap: no slot");

      Memslot plain = vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, 0, 16 * PAGE, f, 0);
      expect(Errno.EINVAL, () -> vm.setMemoryRegion(0, Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT, 0, 16 * PAGE, f, 0));
      assertEquals(List.of(plain), vm.memslots(), "the late toggle went to the kernel first; its refusal changed nothing");

      vm.guestMemory().write(RealGuest.CODE, RealGuest.INCREMENT, 0, RealGuest.INCREMENT.length);
      vm.guestMemory().write(RealGuest.DATA, new byte[] {4}, 0, 1);
      try (dev.gmem.api.Vcpu cpu = vm.createVcpu(0)) {
        RealGuest.startRealMode(cpu, RealGuest.CODE);
        assertEquals(5, assertInstanceOf(VcpuExit.Io.class, cpu.run()).data()[0], "the slot is the kernel's plain guest_memfd slot");
      }
    }
  }

  @Test
  void theFeatureHandsTheKernelTheSlotsOwnBitmap() {
    try (GmemRuntime rt = forcedPassThrough()) {
      UserfaultFeature uf = (UserfaultFeature) rt.feature(Userfault.class).orElseThrow();
      Vm vm = rt.createVm(VmType.DEFAULT);
      assertEquals(new KernelMemslot(0, 0), uf.kernelMemslot(vm, 3, Memslot.GUEST_MEMFD, 8 * PAGE), "no flag: nothing but no view either");
      KernelMemslot k = uf.kernelMemslot(vm, 3, Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT, 8 * PAGE);
      assertEquals(Userfault.MEM_USERFAULT, k.flags());
      assertTrue(k.userfaultBitmap() != 0);
      assertEquals(k, uf.kernelMemslot(vm, 3, Memslot.GUEST_MEMFD | Userfault.MEM_USERFAULT, 8 * PAGE), "the same bitmap on every update");
    }
  }

  static GmemRuntime forcedPassThrough() {
    return TestRuntimes.withProviders("kvm", Map.of(FeatureProvider.class, List.of(ForcedPassThrough.class)), Map.of("gmem.feature.userfault", "false"));
  }

  /** The userfault feature told that the kernel has KVM Userfault (which 6.18 does not). */
  public static final class ForcedPassThrough implements FeatureProvider {
    @Override
    public String id() {
      return "userfault-forced";
    }

    @Override
    public int memslotFlags() {
      return Userfault.MEM_USERFAULT;
    }

    @Override
    public Support probe(HostInfo host) {
      return Support.yes("test: pass-through forced");
    }

    @Override
    public Feature create(HostMemory host) {
      return new UserfaultFeature(host, new KvmUserfaultProbe.Result(true, 0, 0, "present: forced by the test"));
    }
  }
}
