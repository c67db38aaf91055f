package dev.gmem.core.filemap;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A folio of order 9..18, stored by reference in the slot of every chunk it covers. Adding one
 * that spans several chunks reserves the slots first ({@link #RESERVING}, seen as absent) and then
 * goes {@link #LIVE} in one volatile write, which is the moment all of its pages appear at once;
 * a conflicting reservation is rolled back ({@link #DEAD}, also absent).
 */
final class HugeFolio {

  static final int RESERVING = 0;
  static final int LIVE = 1;
  static final int DEAD = 2;

  private static final VarHandle PREPARED;

  static {
    try {
      PREPARED = MethodHandles.lookup().findVarHandle(HugeFolio.class, "prepared", boolean.class);
    } catch (ReflectiveOperationException e) {
      throw new ExceptionInInitializerError(e);
    }
  }

  final long start;
  final int order;
  private volatile int state;
  private volatile boolean prepared;

  HugeFolio(long start, int order, int state, boolean prepared) {
    this.start = start;
    this.order = order;
    this.state = state;
    this.prepared = prepared;
  }

  long firstChunk() {
    return start >>> ChunkTable.BITS;
  }

  /** Chunk after the last one covered. */
  long endChunk() {
    return firstChunk() + (1L << (order - ChunkTable.BITS));
  }

  long nrPages() {
    return 1L << order;
  }

  boolean isLive() {
    return state == LIVE;
  }

  void setState(int s) {
    state = s;
  }

  boolean prepared() {
    return prepared;
  }

  /** Sets the flag to {@code value}; true if this call changed it. */
  boolean casPrepared(boolean value) {
    return PREPARED.compareAndSet(this, !value, value);
  }
}
