package dev.gmem.core.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.BackendInfo;
import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.HostInfo;
import dev.gmem.api.KvmCapability;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class BackendSelectorTest {
  private static HostInfo host(boolean kvm, long gmemFlags) {
    return new HostInfo("6.18", kvm, kvm ? Optional.empty() : Optional.of("open(/dev/kvm) failed: ENOENT"), kvm ? 12 : 0,
        Map.of(KvmCapability.GUEST_MEMFD, kvm ? 1L : 0L), gmemFlags, 1, true, true, List.of());
  }

  @Test
  void kvmWhenGuestMemfdOffersMmapAndInitShared() {
    BackendInfo b = BackendSelector.choose(host(true, 3), Optional.empty());
    assertEquals("kvm", b.name());
    assertTrue(b.reason().contains("MMAP|INIT_SHARED"), b.reason());
  }

  @Test
  void memfdOnlyWhenKvmIsMissing() {
    BackendInfo none = BackendSelector.choose(host(false, 0), Optional.empty());
    assertEquals("memfd", none.name());
    assertTrue(none.reason().contains("ENOENT"), none.reason());
  }

  /** KVM without a guest_memfd gmem can map and share: still kvm, with gmem's memfd as the memory. */
  @Test
  void kvmWithoutAUsableGuestMemfdBindsGmemsMemfd() {
    for (HostInfo h : List.of(host(true, 1), noGuestMemfd())) {
      assertFalse(BackendSelector.realGuestMemfd(h));
      BackendInfo b = BackendSelector.choose(h, Optional.empty());
      assertEquals("kvm", b.name());
      assertTrue(b.reason().contains("no usable guest_memfd") && b.reason().contains("plain user memory"), b.reason());
      assertEquals("kvm", BackendSelector.choose(h, Optional.of("kvm")).name());
    }
    assertTrue(BackendSelector.realGuestMemfd(host(true, 3)));
  }

  /** A kernel built without CONFIG_KVM_GUEST_MEMFD: KVM_CAP_GUEST_MEMFD and its flags are 0. */
  private static HostInfo noGuestMemfd() {
    return new HostInfo("6.18", true, Optional.empty(), 12, Map.of(KvmCapability.GUEST_MEMFD, 0L), 0, 1, true, true, List.of());
  }

  @Test
  void overrideWinsAndIsChecked() {
    assertEquals("memfd", BackendSelector.choose(host(true, 3), Optional.of("memfd")).name());
    GmemException noKvm = assertThrows(GmemException.class, () -> BackendSelector.choose(host(false, 0), Optional.of("kvm")));
    assertEquals(Errno.ENODEV, noKvm.errno());
    GmemException bad = assertThrows(GmemException.class, () -> BackendSelector.choose(host(true, 3), Optional.of("xen")));
    assertEquals(Errno.EINVAL, bad.errno());
    assertEquals("EINVAL: gmem.backend=xen names no backend; available: kvm, memfd", bad.getMessage());
  }
}
