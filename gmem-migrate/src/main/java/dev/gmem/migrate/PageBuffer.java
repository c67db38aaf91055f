package dev.gmem.migrate;

import dev.gmem.migrate.wire.Wire;
import java.nio.ByteBuffer;
import java.util.zip.CRC32C;

/** One page's buffer and checksum state, owned by one sending thread. */
final class PageBuffer {
  final byte[] bytes = new byte[Wire.PAGE];
  final ByteBuffer wrap = ByteBuffer.wrap(bytes);
  final CRC32C crc = new CRC32C();
}
