package dev.gmem.core.convert;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.core.alloc.PageAllocator;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Sys;
import java.util.List;

/** A real inode over a real memfd, without a runtime: cheap enough for thousands of property cases. */
final class TestInode implements AutoCloseable {
  static final Sys SYS = Sys.load();
  static final ArchHooks SW_PROTECTED = new ArchHooks() {
    @Override
    public boolean hasPrivateMemory() {
      return true;
    }

    @Override
    public boolean supportsInitShared() {
      return true;
    }
  };

  final GuestMemInodeImpl inode;

  TestInode(long pages, boolean initShared, ArchHooks arch, FolioAllocator allocator) {
    long size = pages * 4096;
    Fd memory = new Fd(SYS, SYS.memfdCreate("gmem-test", Sys.MFD_CLOEXEC), "memfd");
    SYS.ftruncate(memory.get(), size);
    long flags = GmemFlags.MMAP | (initShared ? GmemFlags.INIT_SHARED : 0);
    inode = new GuestMemInodeImpl(1, size, flags, SYS, memory, allocator.setupInode(size, flags), arch, List.of(), List.of(), () -> {});
  }

  TestInode(long pages, boolean initShared) {
    this(pages, initShared, SW_PROTECTED, new PageAllocator());
  }

  @Override
  public void close() {
    inode.release();
  }
}
