package dev.gmem.core.conformance;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;

/**
 * This process's fds, each as "number -> target", for leak checks: compare them as sets, so an fd
 * that something else (an earlier test's cleaner, the JVM) closes meanwhile is no false alarm,
 * and a new fd is one whether or not another went.
 */
public final class OpenFds {
  private OpenFds() {}

  public static Set<String> now() {
    Set<String> fds = new TreeSet<>();
    // The listing's own fd reads as a link to this directory, under whatever number was free: not one of ours.
    Path listing = Path.of("/proc/" + ProcessHandle.current().pid() + "/fd");
    try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
      for (Path p : (Iterable<Path>) s::iterator) {
        try {
          Path target = Files.readSymbolicLink(p);
          if (!target.equals(listing)) {
            fds.add(p.getFileName() + " -> " + target);
          }
        } catch (IOException gone) {
          // closed meanwhile
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return fds;
  }

  /** The fds open now that were not in {@code before}. */
  public static Set<String> openedSince(Set<String> before) {
    Set<String> now = now();
    now.removeAll(before);
    return now;
  }
}
