package dev.gmem.tck.internal;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.api.spi.HostMemory;

/**
 * A vendor's allocator with every call recorded. An inode whose vendor overrides
 * {@link FolioAllocator.Inode#allocate} gets a wrapper that does too; otherwise one that keeps the
 * default, so core serialises its allocations exactly as it would the vendor's own.
 */
final class RecordingAllocator implements FolioAllocator {
  private final FolioAllocator vendor;
  private final AllocLog log;

  RecordingAllocator(FolioAllocator vendor, AllocLog log) {
    this.vendor = vendor;
    this.log = log;
  }

  @Override
  public Inode setupInode(long size, long flags) throws GmemException {
    Inode inode = vendor.setupInode(size, flags);
    log.events.add("setup " + size + " flags 0x" + Long.toHexString(flags));
    return overridesAllocate(inode) ? new Handles(inode, log) : new ByIndex(inode, log);
  }

  private static boolean overridesAllocate(Inode inode) {
    try {
      return inode.getClass().getMethod("allocate", long.class).getDeclaringClass() != Inode.class;
    } catch (NoSuchMethodException e) {
      return false;
    }
  }

  /** The recording wrapper, without its own {@code allocate}. */
  private static class ByIndex implements Inode {
    final Inode vendor;
    final AllocLog log;

    ByIndex(Inode vendor, AllocLog log) {
      this.vendor = vendor;
      this.log = log;
    }

    @Override
    public int folioOrder() {
      return vendor.folioOrder();
    }

    @Override
    public HostMemory.MemoryFile memory() {
      return vendor.memory();
    }

    @Override
    public void allocFolio(long index) throws GmemException {
      vendor.allocFolio(index);
      log.events.add("alloc " + index);
    }

    @Override
    public void freeFolio(long index, int order) {
      log.events.add("free " + index + " order " + order);
      log.freed(index);
      vendor.freeFolio(index, order);
    }

    @Override
    public int splitOrder(int order) {
      return vendor.splitOrder(order);
    }

    @Override
    public Restructure prepareSplit(long index, int order, int newOrder) throws GmemException {
      if (log.enomemOnSplit) {
        log.enomemOnSplit = false;
        log.events.add("split " + index + " " + order + "->" + newOrder + " refused (injected ENOMEM)");
        throw new GmemException(Errno.ENOMEM, "gmem-tck: injected ENOMEM splitting the folio at " + index);
      }
      Restructure r = vendor.prepareSplit(index, order, newOrder);
      String what = "split " + index + " " + order + "->" + newOrder;
      log.events.add(what);
      return staged(what, r);
    }

    @Override
    public Restructure prepareMerge(long index, int order) throws GmemException {
      Restructure r = vendor.prepareMerge(index, order);
      String what = "merge " + index + " " + order;
      log.events.add(what);
      return staged(what, r);
    }

    private Restructure staged(String what, Restructure r) {
      return new Restructure() {
        @Override
        public void commit() {
          log.events.add("commit " + what);
          r.commit();
        }

        @Override
        public void abort() {
          log.events.add("abort " + what);
          r.abort();
        }
      };
    }

    @Override
    public long trackingBytes() {
      return vendor.trackingBytes();
    }

    @Override
    public void close() {
      log.events.add("close");
      vendor.close();
    }
  }

  /** The recording wrapper of an inode that hands out folio handles. */
  private static final class Handles extends ByIndex {
    Handles(Inode vendor, AllocLog log) {
      super(vendor, log);
    }

    @Override
    public Allocation allocate(long index) throws GmemException {
      Allocation a = vendor.allocate(index);
      log.events.add("alloc " + index);
      return new Allocation() {
        @Override
        public void commit() {
          a.commit();
        }

        @Override
        public void free() {
          log.events.add("free-lost " + index);
          a.free();
        }
      };
    }
  }
}
