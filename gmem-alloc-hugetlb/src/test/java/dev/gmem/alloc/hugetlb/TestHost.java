package dev.gmem.alloc.hugetlb;

import dev.gmem.api.HostInfo;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.core.convert.TestInode;
import dev.gmem.core.host.HostMemoryImpl;
import dev.gmem.core.host.HostProbe;
import dev.gmem.core.sys.Kvm;

/** Core's real host services, for driving the allocator without a runtime. */
final class TestHost {
  private TestHost() {}

  static HostInfo info() {
    return new HostProbe(TestInode.SYS, new Kvm(TestInode.SYS)).probe();
  }

  static HostMemory memory() {
    return new HostMemoryImpl(TestInode.SYS, info());
  }
}
