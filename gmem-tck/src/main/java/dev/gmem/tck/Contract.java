package dev.gmem.tck;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import java.util.Objects;
import java.util.function.Supplier;
import org.junit.jupiter.api.function.Executable;
import org.opentest4j.AssertionFailedError;

/**
 * The contracts the kit checks. Every failure message starts with {@code [id]}, so a vendor (and
 * the kit's own proof, which runs deliberately broken plugins through it) can tell which contract a
 * plugin breaks.
 */
public enum Contract {
  /** {@code kvm_arch_gmem_prepare} once per page, on its first private use; never for shared use. */
  PREPARE_ONCE("prepare-once"),
  /** {@code invalidate} only after the point of no return, never for a failed conversion; no hook after it throws. */
  INVALIDATE_PONR("invalidate-ponr"),
  /** A refused conversion ({@code prepareConversion} veto) changes nothing: attributes, bytes, reachability, arch state. */
  VETO("veto"),
  /** {@code Vm.populate} writes private pages only, and a populated page counts as prepared. */
  POPULATE_PRIVATE("populate-private"),
  /** The bytes gmem shows after each conversion direction are the arch's content effect. */
  CONTENT_EFFECT("content-effect"),
  /** Neither vCPU path maps a page larger than the arch's {@code maxMappingOrder}. */
  MAX_MAPPING_ORDER("max-mapping-order"),
  /** {@code hostMayFault} is asked for every page on every host fault path, and its "no" holds on each. */
  HOST_MAY_FAULT("host-may-fault"),
  /** NO_DIRECT_MAP and INIT_SHARED are refused (EINVAL) exactly where the arch says so. */
  FLAGS_REFUSED("flags-refused"),
  /** A page the arch leaks never returns to the allocator, is never handed out again, and no late hook throws. */
  LEAK_ON_FAILURE("leak-on-failure"),
  /** Conversions racing host and guest accesses never let the host read a private page. */
  CONVERSION_RACE("conversion-race"),
  /** Bad input fails with the kernel's errno and changes nothing. */
  BAD_INPUT("bad-input"),
  /** Allocator: split and merge are staged (prepare, then commit or abort) and a huge folio is freed once, whole. */
  ALLOC_SPLIT_MERGE("alloc-split-merge"),
  /** Allocator: ENOMEM arrives before anything changed. */
  ALLOC_ENOMEM("alloc-enomem"),
  /** Allocator: a partial punch frees nothing and zeroes, a whole punch frees the folio, a pinned page refuses (EAGAIN). */
  ALLOC_PUNCH("alloc-punch");

  private final String id;

  Contract(String id) {
    this.id = id;
  }

  /** The id that prefixes every failure message of this contract. */
  public String id() {
    return id;
  }

  /** {@code [id] message}. */
  public String message(String message) {
    return "[" + id + "] " + message;
  }

  /** Fails the running test for this contract. */
  public AssertionFailedError fail(String message) {
    throw new AssertionFailedError(message(message));
  }

  /** Fails unless {@code condition}. */
  public void check(boolean condition, Supplier<String> message) {
    if (!condition) {
      fail(message.get());
    }
  }

  /** Fails unless {@code expected} equals {@code actual}. */
  public void checkEquals(Object expected, Object actual, String what) {
    if (!Objects.equals(expected, actual)) {
      throw new AssertionFailedError(message(what + ": expected <" + expected + "> but was <" + actual + ">"), expected, actual);
    }
  }

  /**
   * Runs {@code call} and returns the {@link GmemException} it must fail with, of errno
   * {@code errno}; fails the contract if it succeeds or fails otherwise.
   */
  public GmemException expect(Errno errno, String what, Executable call) {
    try {
      call.execute();
    } catch (GmemException e) {
      if (e.errno() != errno) {
        throw new AssertionFailedError(message(what + ": expected " + errno + " but failed with " + e.errno() + ": " + e.getMessage()), e);
      }
      return e;
    } catch (Throwable t) {
      throw new AssertionFailedError(message(what + ": expected " + errno + " but threw " + t), t);
    }
    throw new AssertionFailedError(message(what + ": expected " + errno + " but it succeeded"));
  }

  /** Runs {@code call}, failing the contract (with the cause) if it throws. */
  public void succeeds(String what, Executable call) {
    try {
      call.execute();
    } catch (Throwable t) {
      throw new AssertionFailedError(message(what + " failed: " + t), t);
    }
  }

  /** Like {@link #succeeds} for a call with a result. */
  public <T> T succeeds(String what, Supplier<T> call) {
    try {
      return call.get();
    } catch (RuntimeException | Error t) {
      throw new AssertionFailedError(message(what + " failed: " + t), t);
    }
  }
}
