package dev.gmem.core.host;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.HostInfo;
import dev.gmem.api.KvmCapability;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Kvm;
import dev.gmem.core.sys.Sys;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class HostProbeTest {
  private final Sys sys = Sys.load();

  @Test
  void reportsRealGuestMemfdFlagsWhereKvmExists() {
    assumeTrue(Files.exists(Path.of("/dev/kvm")), "host has no /dev/kvm");
    HostInfo host = new HostProbe(sys, new Kvm(sys)).probe();
    assertTrue(host.kvm(), () -> "KVM unusable: " + host.kvmProblem());
    assertEquals(12, host.kvmApiVersion());
    assertEquals(1, host.capability(KvmCapability.USER_MEMORY2));
    assertTrue((host.vmTypes() & 1) != 0, "DEFAULT VM type offered");
    assertTrue(host.capability(KvmCapability.NR_MEMSLOTS) > 0);
    // A kernel without guest_memfd (CONFIG_KVM_GUEST_MEMFD off) answers 0 for both, and the probe must say so.
    Kvm kvm = new Kvm(sys);
    try (Fd device = kvm.openDevice()) {
      long cap = kvm.checkExtension(device, KvmCapability.GUEST_MEMFD.number());
      long flags = cap == 0 ? 0 : kvm.checkExtension(device, KvmCapability.GUEST_MEMFD_FLAGS.number());
      assertEquals(cap, host.capability(KvmCapability.GUEST_MEMFD));
      assertEquals(flags, host.guestMemfdFlags());
      long needed = GmemFlags.MMAP | GmemFlags.INIT_SHARED;
      assertEquals(cap != 0 && (flags & needed) == needed, host.guestMemfdSupports(needed), "guest_memfd flags " + flags);
    }
  }

  @Test
  void probesUserfaultfdAndMemfdSecretByCallingThem() {
    HostInfo host = new HostProbe(sys, new Kvm(sys)).probe();
    // Both syscalls are compiled into this machine kind's kernel; a host without them reports false.
    assumeTrue(Files.exists(Path.of("/proc/sys/vm/unprivileged_userfaultfd")), "kernel built without userfaultfd");
    assertTrue(host.userfaultfd());
    assertFalse(host.kernelRelease().isEmpty());
  }

  @Test
  void readsHugetlbPoolsFromSysfs(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
    Path p = Files.createDirectories(dir.resolve("hugepages-2048kB"));
    Files.writeString(p.resolve("nr_hugepages"), "16\n");
    Files.writeString(p.resolve("free_hugepages"), "10\n");
    Files.writeString(p.resolve("resv_hugepages"), "2\n");
    Files.writeString(p.resolve("surplus_hugepages"), "0\n");
    Files.createDirectories(dir.resolve("hugepages-1048576kB"));
    var pools = new HostProbe(sys, new Kvm(sys), dir).hugePagePools();
    assertEquals(2, pools.size());
    assertEquals(2L << 20, pools.get(0).pageSize());
    assertEquals(16, pools.get(0).total());
    assertEquals(8, pools.get(0).available());
    assertEquals(1L << 30, pools.get(1).pageSize());
  }
}
