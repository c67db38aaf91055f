package dev.gmem.core.host;

import dev.gmem.api.HostInfo;
import dev.gmem.api.HugePagePool;
import dev.gmem.api.spi.HostMemory;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Sys;
import java.nio.ByteBuffer;
import java.util.List;

/** Core's implementation of the host-memory services plugins receive. */
public final class HostMemoryImpl implements HostMemory {
  private final Sys sys;
  private final HostInfo host;

  public HostMemoryImpl(Sys sys, HostInfo host) {
    this.sys = sys;
    this.host = host;
  }

  @Override
  public HostInfo host() {
    return host;
  }

  /** Read from sysfs on every call: reservations need the counters as they are now. */
  @Override
  public List<HugePagePool> hugePagePools() {
    return HostProbe.hugePagePools(HostProbe.SYSFS_HUGEPAGES);
  }

  @Override
  public MemoryFile createMemfd(String name, int flags, long size) {
    return sized(new Fd(sys, sys.memfdCreate(name, flags | Sys.MFD_CLOEXEC), "memfd:" + name), size);
  }

  @Override
  public MemoryFile createSecretMemory(long size) {
    return sized(new Fd(sys, (int) sys.syscall(Sys.SYS_MEMFD_SECRET, Sys.O_CLOEXEC, "memfd_secret"), "memfd_secret"), size);
  }

  private MemoryFile sized(Fd fd, long size) {
    try {
      sys.ftruncate(fd.get(), size);
    } catch (RuntimeException e) {
      fd.close();
      throw e;
    }
    return new MemoryFile() {
      @Override
      public int fd() {
        return fd.get();
      }

      @Override
      public long size() {
        return size;
      }

      @Override
      public HostMemory.Mapping map(long offset, long length, int prot, int extraFlags) {
        long addr = sys.mmap(0, length, prot, 0x01 | extraFlags, fd.get(), offset);
        return new MappingImpl(new dev.gmem.core.sys.Mapping(sys, addr, length));
      }

      @Override
      public void fallocate(int mode, long offset, long length) {
        sys.fallocate(fd.get(), mode, offset, length);
      }

      @Override
      public void close() {
        fd.close();
      }
    };
  }

  private final class MappingImpl implements HostMemory.Mapping {
    private final dev.gmem.core.sys.Mapping m;

    MappingImpl(dev.gmem.core.sys.Mapping m) {
      this.m = m;
    }

    @Override
    public long address() {
      return m.address();
    }

    @Override
    public long length() {
      return m.length();
    }

    @Override
    public void protect(long offset, long length, int prot) {
      sys.mprotect(m.address() + offset, length, prot);
    }

    @Override
    public void advise(long offset, long length, int advice) {
      sys.madvise(m.address() + offset, length, advice);
    }

    @Override
    public ByteBuffer buffer(long offset, int length) {
      return Sys.buffer(m.address() + offset, length);
    }

    @Override
    public void close() {
      m.close();
    }
  }
}
