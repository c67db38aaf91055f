package dev.gmem.core.access;

import java.lang.reflect.Field;
import sun.misc.Unsafe;

/**
 * Scalar loads and stores at a native address, for the accessors' lock-free path. jffi's
 * {@code MemoryIO} does the same through a {@code static} but not {@code final} {@code Unsafe}
 * field, so C2 loads that field and null-checks it on every access (three instructions and a
 * load in the compiled {@code readLong} loop); here it is a constant. The caller vouches for the
 * address: these are the raw loads, inside the read-side section that keeps the page mapped.
 */
public final class Direct {
  private static final Unsafe U = unsafe();

  private Direct() {}

  private static Unsafe unsafe() {
    try {
      Field f = Unsafe.class.getDeclaredField("theUnsafe");
      f.setAccessible(true);
      return (Unsafe) f.get(null);
    } catch (ReflectiveOperationException e) {
      throw new ExceptionInInitializerError(e);
    }
  }

  public static long getLong(long address) {
    return U.getLong(address);
  }

  public static void putLong(long address, long value) {
    U.putLong(address, value);
  }

  public static byte getByte(long address) {
    return U.getByte(address);
  }

  public static void putByte(long address, byte value) {
    U.putByte(address, value);
  }
}
