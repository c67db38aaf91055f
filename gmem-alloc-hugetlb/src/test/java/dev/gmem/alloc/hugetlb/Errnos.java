package dev.gmem.alloc.hugetlb;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import org.junit.jupiter.api.function.Executable;

/** Asserting a call fails with a given errno. */
final class Errnos {
  private Errnos() {}

  static GmemException expect(Errno errno, Executable call) {
    GmemException e = assertThrows(GmemException.class, call);
    assertEquals(errno, e.errno(), e.getMessage());
    return e;
  }
}
