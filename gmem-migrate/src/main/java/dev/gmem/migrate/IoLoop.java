package dev.gmem.migrate;

import java.io.IOException;

/** The body of one of a link's threads: runs until the link closes or its connection breaks. */
@FunctionalInterface
interface IoLoop {
  void run() throws IOException, InterruptedException;
}
