package dev.gmem.core.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import org.junit.jupiter.api.function.Executable;

/** How tests compare outcomes with the kernel's: "ok" or the errno's name, and expected failures. */
public final class Errnos {
  private Errnos() {}

  /** "ok" when {@code call} returns, else the name of the errno it failed with. */
  public static String outcome(Runnable call) {
    try {
      call.run();
      return "ok";
    } catch (GmemException e) {
      return e.errno().name();
    }
  }

  /** Asserts {@code call} fails with exactly {@code errno}; returns the exception. */
  public static GmemException expect(Errno errno, Executable call) {
    GmemException e = assertThrows(GmemException.class, call);
    assertEquals(errno, e.errno(), e.getMessage());
    return e;
  }
}
