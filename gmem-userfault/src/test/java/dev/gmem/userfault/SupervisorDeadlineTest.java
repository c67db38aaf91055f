package dev.gmem.userfault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.Vm;
import dev.gmem.core.conformance.Backends;
import dev.gmem.userfault.source.PageServer;
import dev.gmem.userfault.source.PageSink;
import dev.gmem.userfault.source.PageSource;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * A deadline per supervisor: a VM's faults wait as long as its own page source says, the
 * runtime-wide {@link Userfault#deadline()} holds for the others, and neither changes the other.
 */
class SupervisorDeadlineTest {
  static final long PAGE = PageServerStartTest.PAGE;

  /** Never delivers a page; asks for {@code deadline}. */
  static final class Silent implements PageSource {
    final Duration deadline;

    Silent(Duration deadline) {
      this.deadline = deadline;
    }

    @Override
    public void start(PageSink sink) {}

    @Override
    public void request(long gfn, boolean urgent) {}

    @Override
    public Duration faultDeadline() {
      return deadline;
    }

    @Override
    public void close() {}
  }

  @Test
  void aVmsFaultsWaitForItsSourcesDeadlineNotTheRuntimes() {
    try (GmemRuntime rt = Backends.open("memfd")) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      uf.deadline(Duration.ofHours(1)); // were this used, the access below would hang past the timeout
      Vm vm = PageServerStartTest.vm(rt);
      try (PageServer server = PageServer.start(uf, vm, new Silent(Duration.ofMillis(150)))) {
        GmemException e = assertTimeoutPreemptively(Duration.ofSeconds(60),
            () -> assertThrows(GmemException.class, () -> vm.guestMemory().loadLong(5 * PAGE)));
        assertEquals(Errno.EIO, e.errno());
        assertTrue(e.getMessage().contains("PT0.15S"), e.getMessage());
        assertTrue(server.paused(), "a stalled source pauses its VM");
      }
      assertEquals(Duration.ofHours(1), uf.deadline(), "a VM's own deadline leaves the runtime's as it was");
    }
  }

  @Test
  void aSourceWithoutItsOwnDeadlineWaitsForTheRuntimesAndTheRuntimesDoesNotReachAnotherVm() {
    try (GmemRuntime rt = Backends.open("memfd")) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      uf.deadline(Duration.ofMillis(120));
      Vm own = PageServerStartTest.vm(rt);
      Vm inherits = PageServerStartTest.vm(rt);
      try (PageServer a = PageServer.start(uf, own, new Silent(Duration.ofHours(1)));
          PageServer b = PageServer.start(uf, inherits, new Silent(null))) {
        GmemException e = assertTimeoutPreemptively(Duration.ofSeconds(60),
            () -> assertThrows(GmemException.class, () -> inherits.guestMemory().loadLong(2 * PAGE)));
        assertEquals(Errno.EIO, e.errno());
        assertTrue(e.getMessage().contains("PT0.12S"), e.getMessage());
        assertEquals(Duration.ofHours(1), a.deadline());
        assertTrue(!a.paused(), "the other VM's source, an hour's deadline, is not failed by the runtime's 120 ms");
      }
    }
  }

  @Test
  void aNonPositiveDeadlineIsEinvalAndAttachesNothing() {
    try (GmemRuntime rt = Backends.open("memfd")) {
      Userfault uf = rt.feature(Userfault.class).orElseThrow();
      Vm vm = PageServerStartTest.vm(rt);
      GmemException e = assertThrows(GmemException.class, () -> PageServer.start(uf, vm, new Silent(Duration.ZERO)));
      assertEquals(Errno.EINVAL, e.errno());
      try (PageServer again = PageServer.start(uf, vm, new Silent(Duration.ofSeconds(5)))) {
        assertEquals(Duration.ofSeconds(5), again.deadline(), "the refused start left no supervisor behind");
      }
    }
  }
}
