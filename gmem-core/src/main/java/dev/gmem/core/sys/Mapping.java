package dev.gmem.core.sys;

import java.util.concurrent.atomic.AtomicBoolean;

/** Sole owner of one {@code mmap} region: unmapped exactly once. */
public final class Mapping implements AutoCloseable {
  private final Sys sys;
  private final long address;
  private final long length;
  private final AtomicBoolean open = new AtomicBoolean(true);

  public Mapping(Sys sys, long address, long length) {
    this.sys = sys;
    this.address = address;
    this.length = length;
  }

  public long address() {
    return address;
  }

  public long length() {
    return length;
  }

  public boolean isOpen() {
    return open.get();
  }

  @Override
  public void close() {
    if (open.compareAndSet(true, false)) {
      sys.munmap(address, length);
    }
  }

  @Override
  public String toString() {
    return "Mapping[0x" + Long.toHexString(address) + "+0x" + Long.toHexString(length) + "]";
  }
}
