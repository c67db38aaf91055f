package dev.gmem.tck.internal;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GuestCall;
import dev.gmem.api.Shareability;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.spi.ArchContext;
import dev.gmem.api.spi.ArchHooks;
import dev.gmem.api.spi.Conversion;
import dev.gmem.api.spi.GmemPage;
import dev.gmem.api.spi.GuestFault;
import dev.gmem.api.spi.Prepared;
import java.nio.ByteBuffer;

/**
 * The vendor's hooks for one VM, every call passed through unchanged and recorded in the
 * session's {@link ArchLog}, plus the kit's injections (applied after the vendor has answered, so
 * the vendor's own logic always runs). Overrides every hook: core then takes its general paths
 * (it skips some work for arches that keep the defaults), which the contracts are about anyway.
 */
public final class RecordingHooks implements ArchHooks {
  private final ArchHooks vendor;
  private final ArchContext context;
  private final ArchLog log;

  RecordingHooks(ArchHooks vendor, ArchContext context, ArchLog log) {
    this.vendor = vendor;
    this.context = context;
    this.log = log;
  }

  /** The vendor's own hooks, for its inspection interfaces ({@code Vm.arch(Class)} sees this wrapper). */
  public ArchHooks vendor() {
    return vendor;
  }

  @Override
  public boolean hasPrivateMemory() {
    return vendor.hasPrivateMemory();
  }

  @Override
  public boolean supportsInitShared() {
    return vendor.supportsInitShared();
  }

  @Override
  public boolean supportsNoDirectMap() {
    return vendor.supportsNoDirectMap();
  }

  @Override
  public void prepare(GmemPage first, long gfn, int order) throws GmemException {
    vendor.prepare(first, gfn, order);
    log.prepared(first, 1L << order);
    log.events.add("prepare " + first + " order " + order);
  }

  @Override
  public void invalidate(GmemPage first, long nrPages) {
    log.events.add("invalidate " + first + " x" + nrPages);
    log.invalidated(first, nrPages);
    try {
      vendor.invalidate(first, nrPages);
    } catch (RuntimeException e) {
      log.lateThrows.add("ArchHooks.invalidate(" + first + ", " + nrPages + ") threw " + e);
      throw e;
    }
    for (long i = 0; i < nrPages; i++) {
      if (log.failInvalidate.remove(first.plus(i))) {
        context.leak(first.plus(i), 1, "gmem-tck: injected firmware failure");
      }
    }
  }

  @Override
  public ContentEffect contentEffect(Shareability from, Shareability to) {
    return vendor.contentEffect(from, to);
  }

  @Override
  public Prepared prepareConversion(Conversion run) throws GmemException {
    Prepared prepared = vendor.prepareConversion(run);
    log.events.add("accept " + run);
    if (log.veto.test(run)) {
      prepared.abort();
      log.events.add("abort " + run + " (injected veto)");
      throw new GmemException(Errno.EBUSY, "gmem-tck: injected veto of " + run);
    }
    return new Prepared() {
      @Override
      public void commit() {
        log.events.add("commit " + run);
        try {
          prepared.commit();
        } catch (RuntimeException e) {
          log.lateThrows.add("Prepared.commit() of " + run + " threw " + e);
          throw e;
        }
      }

      @Override
      public void abort() {
        log.events.add("abort " + run);
        prepared.abort();
      }
    };
  }

  @Override
  public BusyPolicy busyReferences(Conversion run) {
    return vendor.busyReferences(run);
  }

  @Override
  public void drained(GmemPage first, long nrPages) {
    log.events.add("drained " + first + " x" + nrPages);
    try {
      vendor.drained(first, nrPages);
    } catch (RuntimeException e) {
      log.lateThrows.add("ArchHooks.drained(" + first + ", " + nrPages + ") threw " + e);
      throw e;
    }
  }

  @Override
  public void validatePopulate(long gpa, long npages, long flags, boolean inPlace) throws GmemException {
    vendor.validatePopulate(gpa, npages, flags, inPlace);
  }

  @Override
  public boolean postPopulate(GmemPage page, long gfn, ByteBuffer source, ByteBuffer target, long flags) throws GmemException {
    boolean done = vendor.postPopulate(page, gfn, source, target, flags);
    if (done) {
      log.populated(page);
      log.events.add("populate " + page);
    }
    return done;
  }

  @Override
  public void finalizeLaunch() throws GmemException {
    vendor.finalizeLaunch();
  }

  @Override
  public int maxMappingOrder(GmemPage page, long gfn, boolean isPrivate) {
    int order = vendor.maxMappingOrder(page, gfn, isPrivate);
    log.maxOrder(page, isPrivate, order);
    return order;
  }

  @Override
  public boolean privateBitInAccess() {
    return vendor.privateBitInAccess();
  }

  @Override
  public void vcpuPreRun() throws GmemException {
    vendor.vcpuPreRun();
  }

  @Override
  public long sharedGpaBit() {
    return vendor.sharedGpaBit();
  }

  @Override
  public boolean hostMayFault(GmemPage page, Shareability shareability) {
    log.hostAsked(page);
    boolean may = vendor.hostMayFault(page, shareability);
    return may && !log.denyHost.contains(page);
  }

  @Override
  public VcpuExit.GuestException guestAccess(GuestFault access) {
    return vendor.guestAccess(access);
  }

  @Override
  public GuestCall guestCall(long nr, long[] args) {
    return vendor.guestCall(nr, args);
  }

  @Override
  public void moveEncryptionContextFrom(ArchHooks source) throws GmemException {
    vendor.moveEncryptionContextFrom(source instanceof RecordingHooks r ? r.vendor : source);
  }
}
