package dev.gmem.directmap;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchContext;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.HostMemory;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.BiPredicate;

/**
 * A SW_PROTECTED arch that records, at each prepare and invalidate, whether the page was removed
 * from gmem's direct map at that moment — the order the v12 rules fix (zap, then prepare;
 * invalidate, then restore).
 */
final class RecordingArch implements ArchHooks {
  static final String ID = "direct-map-recording";

  /** One hook call: which, the page, and whether the page was removed from the direct map then. */
  record Call(String hook, long ino, long index, boolean removedThen) {}

  static final List<Call> CALLS = new CopyOnWriteArrayList<>();
  /** Set by tests: asks the feature whether a page is removed now. */
  static volatile BiPredicate<Long, Long> removed = (ino, index) -> false;

  @Override
  public boolean hasPrivateMemory() {
    return true;
  }

  @Override
  public boolean supportsInitShared() {
    return true;
  }

  @Override
  public void prepare(GmemPage first, long gfn, int order) {
    CALLS.add(new Call("prepare", first.ino(), first.index(), removed.test(first.ino(), first.index())));
  }

  /** Set by tests: postPopulate scribbles on its target, then fails with EIO. */
  static volatile boolean failPopulate;
  /** The address of every buffer postPopulate was given to write a page into. */
  static final List<Long> POPULATE_TARGETS = new CopyOnWriteArrayList<>();

  @Override
  public boolean postPopulate(GmemPage page, long gfn, ByteBuffer source, ByteBuffer target, long flags) {
    POPULATE_TARGETS.add(com.kenai.jffi.MemoryIO.getInstance().getDirectBufferAddress(target));
    if (failPopulate) {
      target.put(0, (byte) 0xee);
      throw new GmemException(Errno.EIO, "test: the firmware failed after touching the page");
    }
    return ArchHooks.super.postPopulate(page, gfn, source, target, flags);
  }

  @Override
  public void invalidate(GmemPage first, long nrPages) {
    CALLS.add(new Call("invalidate", first.ino(), first.index(), removed.test(first.ino(), first.index())));
  }

  public static final class Provider implements ArchProvider {
    @Override
    public String id() {
      return ID;
    }

    @Override
    public Set<VmType> vmTypes() {
      return Set.of(VmType.SW_PROTECTED);
    }

    @Override
    public ArchHooks create(VmType type, HostMemory host) {
      return new RecordingArch();
    }

    @Override
    public ArchHooks create(VmType type, HostMemory host, ArchContext vm) {
      return new RecordingArch();
    }
  }
}
