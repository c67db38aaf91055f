package dev.gmem.userfault.snapshot;

import java.io.IOException;
import java.lang.reflect.Constructor;
import java.lang.reflect.RecordComponent;

/**
 * Writes and reads the vCPU state records ({@code Registers}, {@code SpecialRegisters} and their
 * segments and tables) component by component in declaration order: longs, ints, booleans and
 * nested records. The snapshot stores what the API returns, nothing hidden; the migration wire
 * protocol ({@code gmem-migrate}) sends vCPU state the same way.
 */
@dev.gmem.api.Api(status = dev.gmem.api.Api.Status.EXPERIMENTAL, since = "0.2")
public final class RecordCodec {
  private RecordCodec() {}

  public static void write(java.io.DataOutput out, Record r) throws IOException {
    for (RecordComponent c : r.getClass().getRecordComponents()) {
      Object v;
      try {
        v = c.getAccessor().invoke(r);
      } catch (ReflectiveOperationException e) {
        throw new IOException(e);
      }
      if (v instanceof Long l) {
        out.writeLong(l);
      } else if (v instanceof Integer i) {
        out.writeInt(i);
      } else if (v instanceof Boolean b) {
        out.writeBoolean(b);
      } else if (v instanceof Record nested) {
        write(out, nested);
      } else {
        throw new IOException("cannot store " + c);
      }
    }
  }

  public static <T extends Record> T read(java.io.DataInput in, Class<T> type) throws IOException {
    RecordComponent[] cs = type.getRecordComponents();
    Object[] values = new Object[cs.length];
    Class<?>[] types = new Class<?>[cs.length];
    for (int i = 0; i < cs.length; i++) {
      Class<?> t = cs[i].getType();
      types[i] = t;
      if (t == long.class) {
        values[i] = in.readLong();
      } else if (t == int.class) {
        values[i] = in.readInt();
      } else if (t == boolean.class) {
        values[i] = in.readBoolean();
      } else if (t.isRecord()) {
        values[i] = read(in, t.asSubclass(Record.class));
      } else {
        throw new IOException("cannot read " + cs[i]);
      }
    }
    try {
      Constructor<T> k = type.getDeclaredConstructor(types);
      return k.newInstance(values);
    } catch (ReflectiveOperationException e) {
      throw new IOException(e);
    }
  }
}
