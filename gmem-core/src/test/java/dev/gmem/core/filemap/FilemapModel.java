package dev.gmem.core.filemap;

import dev.gmem.api.Folio;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The simple reference: per page, its folio's start and order, whether the page is prepared, and
 * its count. A folio is prepared when all of its pages are: prepare runs once per page, so split
 * and merge keep what each page is.
 */
final class FilemapModel {

  final int n;
  final long[] start;
  final int[] order;
  final boolean[] prepared;
  final int[] refs;

  FilemapModel(int n) {
    this.n = n;
    start = new long[n];
    order = new int[n];
    prepared = new boolean[n];
    refs = new int[n];
    Arrays.fill(start, -1);
    Arrays.fill(order, -1);
  }

  boolean present(int p) {
    return start[p] >= 0;
  }

  boolean add(int index, int o) {
    for (int p = index; p < index + (1 << o); p++) {
      if (present(p)) {
        return false;
      }
    }
    setFolio(index, o);
    return true;
  }

  /** A new folio over pages whose prepared state stays as it was (false for pages just added). */
  private void setFolio(int index, int o) {
    for (int p = index; p < index + (1 << o); p++) {
      start[p] = index;
      order[p] = o;
    }
  }

  int sumRefs(long s, int o) {
    int sum = 0;
    for (long p = s; p < s + (1L << o); p++) {
      sum += refs[(int) p];
    }
    return sum;
  }

  List<Folio> folios(int s, int e) {
    List<Folio> out = new ArrayList<>();
    int p = s;
    if (present(p)) {
      p = (int) start[p];
    }
    while (p < e) {
      if (!present(p)) {
        p++;
        continue;
      }
      out.add(new Folio(p, order[p], sumRefs(p, order[p])));
      p += 1 << order[p];
    }
    return out;
  }

  List<Folio> remove(int s, int e) {
    List<Folio> out = new ArrayList<>();
    for (Folio f : folios(s, e)) {
      if (f.index() >= s && f.index() + f.nrPages() <= e) {
        out.add(f);
        for (long p = f.index(); p < f.index() + f.nrPages(); p++) {
          start[(int) p] = -1;
          order[(int) p] = -1;
          prepared[(int) p] = false;
          refs[(int) p] = 0;
        }
      }
    }
    return out;
  }

  /** @return null on success, else why it must fail */
  String split(int index, int newOrder) {
    if (!present(index)) {
      return "absent";
    }
    int o = order[index];
    if (newOrder >= o) {
      return "order";
    }
    int s = (int) start[index];
    for (int p = s; p < s + (1 << o); p += 1 << newOrder) {
      setFolio(p, newOrder);
    }
    return null;
  }

  String merge(int index, int o) {
    for (int p = index; p < index + (1 << o); p++) {
      if (!present(p)) {
        return "absent";
      }
      if (order[p] >= o) {
        return "order";
      }
    }
    setFolio(index, o);
    return null;
  }

  /** The folio's flag: every page of the folio holding {@code p} is prepared. */
  boolean folioPrepared(int p) {
    int s = (int) start[p];
    for (int q = s; q < s + (1 << order[p]); q++) {
      if (!prepared[q]) {
        return false;
      }
    }
    return true;
  }

  void setPrepared(int p, boolean value) {
    int s = (int) start[p];
    for (int q = s; q < s + (1 << order[p]); q++) {
      prepared[q] = value;
    }
  }

  long presentPages() {
    return Arrays.stream(start).filter(s -> s >= 0).count();
  }

  long firstReferenced(int s, int e) {
    for (int p = s; p < e; p++) {
      if (refs[p] > 0) {
        return p;
      }
    }
    return -1;
  }
}
