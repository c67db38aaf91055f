package dev.gmem.core.convert;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.core.alloc.PageAllocator;
import dev.gmem.core.inode.GuestMemInodeImpl;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Sys;
import java.util.List;

/**
 * A real inode without a runtime, cheap enough for thousands of property cases: over the memory
 * the allocator supplies (dup'ed, as {@code VmImpl} does), else over a fresh memfd. Public so that
 * allocator plugins can run core's harnesses on their own memory (gmem-core's test jar).
 */
public final class TestInode implements AutoCloseable {
  public static final Sys SYS = Sys.load();
  /** Core's own SW_PROTECTED hooks: private memory in software, contents kept on conversion. */
  public static final ArchHooks SW_PROTECTED = new dev.gmem.core.arch.DefaultArchProvider().create(dev.gmem.api.VmType.SW_PROTECTED, null);

  public final GuestMemInodeImpl inode;

  /** An inode of {@code pages} pages created with {@code flags}; fails as {@code setupInode} does. */
  public TestInode(long pages, long flags, ArchHooks arch, FolioAllocator allocator) {
    long size = pages * 4096;
    FolioAllocator.Inode alloc = allocator.setupInode(size, flags);
    Fd memory;
    try {
      if (alloc.memory() != null) {
        memory = new Fd(SYS, SYS.dup(alloc.memory().fd()), "allocator-memory");
      } else {
        memory = new Fd(SYS, SYS.memfdCreate("gmem-test", Sys.MFD_CLOEXEC), "memfd");
        SYS.ftruncate(memory.get(), size);
      }
    } catch (RuntimeException e) {
      alloc.close();
      throw e;
    }
    inode = new GuestMemInodeImpl(1, size, flags, SYS, memory, alloc, arch, List.of(), List.of(), alloc.memory() == null);
  }

  public TestInode(long pages, boolean initShared, ArchHooks arch, FolioAllocator allocator) {
    this(pages, GmemFlags.MMAP | (initShared ? GmemFlags.INIT_SHARED : 0), arch, allocator);
  }

  public TestInode(long pages, boolean initShared) {
    this(pages, initShared, SW_PROTECTED, new PageAllocator());
  }

  @Override
  public void close() {
    inode.release();
  }
}
