package dev.gmem.tck.internal;

import dev.gmem.api.spi.Conversion;
import dev.gmem.api.spi.GmemPage;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;

/**
 * What the arch hooks of one kit runtime were asked and answered, and what the kit injects: a
 * hypervisor's "no" to host faults, a veto, a firmware failure after the point of no return.
 * Thread-safe: hooks run on fault, conversion and drain threads.
 */
public final class ArchLog {
  /** Hook calls in order: "prepare …", "invalidate …", "accept …", "commit …", "abort …", "leak …", "populate …". */
  public final List<String> events = new CopyOnWriteArrayList<>();
  /** Hook failures after a point of no return (invalidate, drained, Prepared.commit): each breaks a contract. */
  public final List<String> lateThrows = new CopyOnWriteArrayList<>();
  private final Map<GmemPage, AtomicInteger> prepared = new ConcurrentHashMap<>();
  private final Map<GmemPage, AtomicInteger> invalidated = new ConcurrentHashMap<>();
  private final Map<GmemPage, AtomicInteger> populated = new ConcurrentHashMap<>();
  private final Map<GmemPage, AtomicInteger> hostAsked = new ConcurrentHashMap<>();
  private final Map<String, Integer> lastMaxOrder = new ConcurrentHashMap<>();
  private final AtomicInteger maxOrderCalls = new AtomicInteger();
  /** Pages reported through ArchContext.leak. */
  public final Set<GmemPage> leaked = ConcurrentHashMap.newKeySet();

  /** Injected: pages the "hypervisor" refuses to the host whatever the arch answers. */
  public final Set<GmemPage> denyHost = ConcurrentHashMap.newKeySet();
  /** Injected: pages whose invalidate the "firmware" fails, so the kit leaks them as an arch must. */
  public final Set<GmemPage> failInvalidate = ConcurrentHashMap.newKeySet();
  /** Injected: runs refused (EBUSY) after the arch itself accepted them. */
  public volatile Predicate<Conversion> veto = r -> false;

  private static int count(Map<GmemPage, AtomicInteger> m, GmemPage p) {
    AtomicInteger n = m.get(p);
    return n == null ? 0 : n.get();
  }

  private static void add(Map<GmemPage, AtomicInteger> m, GmemPage first, long n) {
    for (long i = 0; i < n; i++) {
      m.computeIfAbsent(first.plus(i), k -> new AtomicInteger()).incrementAndGet();
    }
  }

  void prepared(GmemPage first, long n) {
    add(prepared, first, n);
  }

  void invalidated(GmemPage first, long n) {
    add(invalidated, first, n);
  }

  void populated(GmemPage page) {
    add(populated, page, 1);
  }

  void hostAsked(GmemPage page) {
    add(hostAsked, page, 1);
  }

  void maxOrder(GmemPage page, boolean isPrivate, int order) {
    maxOrderCalls.incrementAndGet();
    lastMaxOrder.put(page + (isPrivate ? " private" : " shared"), order);
  }

  /** Times {@code prepare} covered {@code page}. */
  public int prepareCount(GmemPage page) {
    return count(prepared, page);
  }

  /** Times {@code invalidate} covered {@code page}. */
  public int invalidateCount(GmemPage page) {
    return count(invalidated, page);
  }

  /** Times {@code postPopulate} was called for {@code page}. */
  public int populateCount(GmemPage page) {
    return count(populated, page);
  }

  /** Times {@code hostMayFault} was asked about {@code page}. */
  public int hostAskedCount(GmemPage page) {
    return count(hostAsked, page);
  }

  /** Calls of {@code maxMappingOrder} so far. */
  public int maxOrderCalls() {
    return maxOrderCalls.get();
  }

  /** The arch's last {@code maxMappingOrder} answer for {@code page}, or null if never asked. */
  public Integer lastMaxOrder(GmemPage page, boolean isPrivate) {
    return lastMaxOrder.get(page + (isPrivate ? " private" : " shared"));
  }
}
