package dev.gmem.migrate.wire;

import dev.gmem.api.Api;
import dev.gmem.api.Registers;
import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import dev.gmem.api.SpecialRegisters;
import dev.gmem.api.VmType;
import dev.gmem.userfault.snapshot.RecordCodec;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * What the destination needs before the VM can run there: the VM type and arch, every file (flags,
 * size, shareability runs), every memslot, and each vCPU's registers at the switch-over.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public record Handshake(VmType type, String arch, List<FileInfo> files, List<SlotInfo> slots, List<VcpuState> vcpus) {
  public Handshake {
    files = List.copyOf(files);
    slots = List.copyOf(slots);
    vcpus = List.copyOf(vcpus);
  }

  /** A guest_memfd file: its creation flags, size in bytes and shareability runs (page indices). */
  public record FileInfo(long flags, long size, List<ShareabilityRange> shareability) {
    public FileInfo {
      shareability = List.copyOf(shareability);
    }
  }

  /** A memslot bound to file {@code file} (index into {@link #files}). */
  public record SlotInfo(int slot, int flags, long gpa, long size, int file, long offset) {}

  /** A vCPU's state at the switch-over. */
  public record VcpuState(int id, Registers registers, SpecialRegisters specialRegisters) {}

  /** Pages the memslots cover: what the destination will fault or receive. */
  public long pages() {
    return slots.stream().mapToLong(s -> s.size() / Wire.PAGE).sum();
  }

  public byte[] encode() {
    try {
      ByteArrayOutputStream bytes = new ByteArrayOutputStream();
      DataOutputStream out = new DataOutputStream(bytes);
      out.writeUTF(type.name());
      out.writeUTF(arch);
      out.writeInt(files.size());
      for (FileInfo f : files) {
        out.writeLong(f.flags());
        out.writeLong(f.size());
        out.writeInt(f.shareability().size());
        for (ShareabilityRange r : f.shareability()) {
          out.writeLong(r.start());
          out.writeLong(r.end());
          out.writeByte(r.shareability().ordinal());
        }
      }
      out.writeInt(slots.size());
      for (SlotInfo s : slots) {
        out.writeInt(s.slot());
        out.writeInt(s.flags());
        out.writeLong(s.gpa());
        out.writeLong(s.size());
        out.writeInt(s.file());
        out.writeLong(s.offset());
      }
      out.writeInt(vcpus.size());
      for (VcpuState v : vcpus) {
        out.writeInt(v.id());
        RecordCodec.write(out, v.registers());
        RecordCodec.write(out, v.specialRegisters());
      }
      out.flush();
      return bytes.toByteArray();
    } catch (IOException e) {
      throw new IllegalStateException(e); // in memory
    }
  }

  /** Decodes a handshake; IOException for anything malformed (unknown VM type, bad index, short input). */
  public static Handshake decode(byte[] bytes) throws IOException {
    DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes));
    VmType type;
    String typeName = in.readUTF();
    try {
      type = VmType.valueOf(typeName);
    } catch (IllegalArgumentException e) {
      throw new IOException("unknown VM type " + typeName);
    }
    String arch = in.readUTF();
    int nf = count(in.readInt());
    List<FileInfo> files = new ArrayList<>();
    for (int i = 0; i < nf; i++) {
      long flags = in.readLong();
      long size = in.readLong();
      int nr = count(in.readInt());
      List<ShareabilityRange> ranges = new ArrayList<>();
      for (int k = 0; k < nr; k++) {
        long start = in.readLong();
        long end = in.readLong();
        int s = in.readUnsignedByte();
        if (s >= Shareability.values().length || end <= start) {
          throw new IOException("bad shareability range");
        }
        ranges.add(new ShareabilityRange(start, end, Shareability.values()[s]));
      }
      files.add(new FileInfo(flags, size, ranges));
    }
    int ns = count(in.readInt());
    List<SlotInfo> slots = new ArrayList<>();
    for (int i = 0; i < ns; i++) {
      SlotInfo s = new SlotInfo(in.readInt(), in.readInt(), in.readLong(), in.readLong(), in.readInt(), in.readLong());
      if (s.file() < 0 || s.file() >= files.size() || s.size() % Wire.PAGE != 0 || s.gpa() % Wire.PAGE != 0) {
        throw new IOException("bad memslot " + s);
      }
      slots.add(s);
    }
    int nv = count(in.readInt());
    List<VcpuState> vcpus = new ArrayList<>();
    for (int i = 0; i < nv; i++) {
      vcpus.add(new VcpuState(in.readInt(), RecordCodec.read(in, Registers.class), RecordCodec.read(in, SpecialRegisters.class)));
    }
    if (in.available() != 0) {
      throw new IOException("trailing bytes after the handshake");
    }
    return new Handshake(type, arch, files, slots, vcpus);
  }

  private static int count(int n) throws IOException {
    if (n < 0 || n > 1 << 20) {
      throw new IOException("bad count " + n);
    }
    return n;
  }
}
