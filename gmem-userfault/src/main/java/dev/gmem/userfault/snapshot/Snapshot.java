package dev.gmem.userfault.snapshot;

import dev.gmem.api.Api;
import dev.gmem.api.GmemException;
import dev.gmem.api.Errno;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Registers;
import dev.gmem.api.Shareability;
import dev.gmem.api.ShareabilityRange;
import dev.gmem.api.SpecialRegisters;
import dev.gmem.api.Vcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/**
 * A VM snapshot on disk, Firecracker-style: {@code vm.meta} (VM type, the files with their flags,
 * size and shareability, the memslots with their flags and bindings, the vCPU's registers),
 * {@code memory.img} (every memslot's pages at their GPA, zero pages left as holes) and
 * {@code zero.bits} (which pages are known zero: served as their own message, never as a
 * fallback). {@code workingset} holds the demand-fault order of the last restore.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class Snapshot {
  static final long PAGE = 4096;
  private static final int MAGIC = 0x676d656d; // "gmem"
  private static final int VERSION = 1;

  /** A file of the snapshot: its flags, size and shareability runs. */
  public record FileMeta(long flags, long size, List<ShareabilityRange> shareability) {}

  /** A memslot: its file (index into {@link #files}), flags and binding. */
  public record SlotMeta(int slot, int flags, long gpa, long size, int file, long offset) {}

  private final Path dir;
  private final VmType type;
  private final List<FileMeta> files;
  private final List<SlotMeta> slots;
  private final Registers registers;
  private final SpecialRegisters specialRegisters;

  private Snapshot(Path dir, VmType type, List<FileMeta> files, List<SlotMeta> slots, Registers r, SpecialRegisters s) {
    this.dir = dir;
    this.type = type;
    this.files = files;
    this.slots = slots;
    this.registers = r;
    this.specialRegisters = s;
  }

  public Path dir() {
    return dir;
  }

  public VmType type() {
    return type;
  }

  public List<FileMeta> files() {
    return files;
  }

  public List<SlotMeta> slots() {
    return slots;
  }

  public Registers registers() {
    return registers;
  }

  public SpecialRegisters specialRegisters() {
    return specialRegisters;
  }

  /** Pages the memslots cover. */
  public long pages() {
    return slots.stream().mapToLong(s -> s.size() / PAGE).sum();
  }

  /**
   * Writes {@code vm}'s memory, files, shareability, memslots and {@code vcpu}'s registers to
   * {@code dir} (created; existing snapshot files replaced). The VM must not run meanwhile. Shared
   * pages are read through the VM's GPA view; private pages through the software vCPU's private
   * access, as the guest reads them (so where the arch's private memory is not plain — an
   * encrypting arch refusing the access — EFAULT); pages in any other state: EBUSY. The image holds
   * private content in the clear: SW_PROTECTED memory, protected from the host's views, not
   * encrypted.
   */
  public static Snapshot write(Vm vm, Vcpu vcpu, Path dir) throws IOException {
    Files.createDirectories(dir);
    List<Memslot> memslots = vm.memslots();
    List<GuestMemFile> fileList = new ArrayList<>();
    List<SlotMeta> slotMetas = new ArrayList<>();
    for (Memslot m : memslots) {
      int fi = fileList.indexOf(m.file());
      if (fi < 0) {
        fileList.add(m.file());
        fi = fileList.size() - 1;
      }
      slotMetas.add(new SlotMeta(m.slot(), m.flags(), m.gpa(), m.size(), fi, m.offset()));
    }
    List<FileMeta> fileMetas = new ArrayList<>();
    for (GuestMemFile f : fileList) {
      fileMetas.add(new FileMeta(f.inode().flags(), f.size(), f.inode().shareabilityRanges(0, f.size() / PAGE)));
    }
    Registers regs = vcpu.registers();
    SpecialRegisters sregs = vcpu.specialRegisters();
    BitSet zero = new BitSet();
    long maxGfn = 0;
    try (FileChannel img = FileChannel.open(dir.resolve("memory.img"), StandardOpenOption.CREATE, StandardOpenOption.WRITE,
        StandardOpenOption.TRUNCATE_EXISTING)) {
      byte[] page = new byte[(int) PAGE];
      for (SlotMeta s : slotMetas) {
        for (long p = 0; p < s.size() / PAGE; p++) {
          long gpa = s.gpa() + p * PAGE;
          readPage(vm, fileList.get(s.file()), s.offset() + p * PAGE, gpa, page);
          if (isZero(page)) {
            zero.set(Math.toIntExact(gpa / PAGE));
          } else {
            img.write(ByteBuffer.wrap(page), gpa);
          }
          maxGfn = Math.max(maxGfn, gpa / PAGE + 1);
        }
      }
      if (img.size() < maxGfn * PAGE) {
        img.write(ByteBuffer.allocate(1), maxGfn * PAGE - 1); // the image spans every slot; holes read zero
      }
    }
    Files.write(dir.resolve("zero.bits"), zero.toByteArray());
    try (DataOutputStream out = new DataOutputStream(new BufferedOutputStream(Files.newOutputStream(dir.resolve("vm.meta"))))) {
      out.writeInt(MAGIC);
      out.writeInt(VERSION);
      out.writeUTF(vm.type().name());
      out.writeInt(fileMetas.size());
      for (FileMeta f : fileMetas) {
        out.writeLong(f.flags());
        out.writeLong(f.size());
        out.writeInt(f.shareability().size());
        for (ShareabilityRange r : f.shareability()) {
          out.writeLong(r.start());
          out.writeLong(r.end());
          out.writeUTF(r.shareability().name());
        }
      }
      out.writeInt(slotMetas.size());
      for (SlotMeta s : slotMetas) {
        out.writeInt(s.slot());
        out.writeInt(s.flags());
        out.writeLong(s.gpa());
        out.writeLong(s.size());
        out.writeInt(s.file());
        out.writeLong(s.offset());
      }
      RecordCodec.write(out, regs);
      RecordCodec.write(out, sregs);
    }
    return new Snapshot(dir, vm.type(), fileMetas, slotMetas, regs, sregs);
  }

  /**
   * Reads the page at {@code gpa} (file offset {@code offset}): a shared page through the VMM's GPA
   * view, a private one (SW_PROTECTED: private, not encrypted) the way the guest's own private load
   * would, through the software vCPU — never through a host view of private memory. A page in
   * any other state (NONE, parked) cannot be saved: EBUSY.
   */
  private static void readPage(Vm vm, GuestMemFile file, long offset, long gpa, byte[] page) {
    Shareability sh = file.shareability(offset);
    if (sh == Shareability.SHARED) {
      vm.guestMemory().read(gpa, page, 0, page.length);
      return;
    }
    if (sh != Shareability.PRIVATE) {
      throw new GmemException(Errno.EBUSY, "snapshot: the page at GPA 0x" + Long.toHexString(gpa) + " is " + sh + ", neither shared nor private");
    }
    VcpuExit refused = vm.softwareVcpu().read(gpa, page, 0, page.length, true);
    if (refused != null) {
      throw new GmemException(Errno.EFAULT, "snapshot: the private page at GPA 0x" + Long.toHexString(gpa) + " cannot be read: " + refused);
    }
  }

  /** Writes a page restored eagerly: as {@link #readPage} reads it, by its shareability in the new VM. */
  private static void writePage(Vm vm, GuestMemFile file, long offset, long gpa, byte[] src, int index) {
    if (file.shareability(offset) == Shareability.PRIVATE) {
      VcpuExit refused = vm.softwareVcpu().write(gpa, src, index, (int) PAGE, true);
      if (refused != null) {
        throw new GmemException(Errno.EFAULT, "restore: the private page at GPA 0x" + Long.toHexString(gpa) + " cannot be written: " + refused);
      }
    } else {
      vm.guestMemory().write(gpa, src, index, (int) PAGE);
    }
  }

  private static boolean isZero(byte[] page) {
    for (byte b : page) {
      if (b != 0) {
        return false;
      }
    }
    return true;
  }

  /** Reads the snapshot in {@code dir}. EINVAL for something that is not one. */
  public static Snapshot read(Path dir) throws IOException {
    try (DataInputStream in = new DataInputStream(new BufferedInputStream(Files.newInputStream(dir.resolve("vm.meta"))))) {
      if (in.readInt() != MAGIC || in.readInt() != VERSION) {
        throw GmemException.einval(dir + " holds no gmem snapshot of version " + VERSION);
      }
      VmType type = VmType.valueOf(in.readUTF());
      int nf = in.readInt();
      List<FileMeta> files = new ArrayList<>();
      for (int i = 0; i < nf; i++) {
        long flags = in.readLong();
        long size = in.readLong();
        int nr = in.readInt();
        List<ShareabilityRange> ranges = new ArrayList<>();
        for (int k = 0; k < nr; k++) {
          ranges.add(new ShareabilityRange(in.readLong(), in.readLong(), Shareability.valueOf(in.readUTF())));
        }
        files.add(new FileMeta(flags, size, ranges));
      }
      int ns = in.readInt();
      List<SlotMeta> slots = new ArrayList<>();
      for (int i = 0; i < ns; i++) {
        slots.add(new SlotMeta(in.readInt(), in.readInt(), in.readLong(), in.readLong(), in.readInt(), in.readLong()));
      }
      Registers r = RecordCodec.read(in, Registers.class);
      SpecialRegisters s = RecordCodec.read(in, SpecialRegisters.class);
      return new Snapshot(dir, type, files, slots, r, s);
    }
  }

  /**
   * Copies memslot {@code s}'s pages from the image into {@code vm}'s memory at once (an eager
   * restore of that slot; its pages must be present, not under USERFAULT). Known-zero pages are
   * left as they are: a fresh file reads zero there.
   */
  void copyInto(Vm vm, SlotMeta s, GuestMemFile file) throws IOException {
    BitSet zero = zeroPages();
    int chunk = 256 * (int) PAGE;
    ByteBuffer b = ByteBuffer.allocate(chunk);
    try (FileChannel img = FileChannel.open(dir.resolve("memory.img"), StandardOpenOption.READ)) {
      for (long off = 0; off < s.size(); off += chunk) {
        int len = (int) Math.min(chunk, s.size() - off);
        b.clear().limit(len);
        while (b.hasRemaining() && img.read(b, s.gpa() + off + b.position()) > 0) {
          // positional reads until the chunk is full or the image ends (holes read zero)
        }
        for (int p = 0; p < len; p += (int) PAGE) {
          long gfn = (s.gpa() + off + p) / PAGE;
          if (gfn >= Integer.MAX_VALUE || !zero.get((int) gfn)) {
            writePage(vm, file, s.offset() + off + p, s.gpa() + off + p, b.array(), p);
          }
        }
      }
    }
  }

  /** Pages known to be zero, by GFN. */
  BitSet zeroPages() throws IOException {
    return BitSet.valueOf(Files.readAllBytes(dir.resolve("zero.bits")));
  }

  /** The working set recorded by the last restore (GFNs in demand order), empty if none. */
  public List<Long> workingSet() throws IOException {
    Path p = dir.resolve("workingset");
    if (!Files.exists(p)) {
      return List.of();
    }
    List<Long> out = new ArrayList<>();
    for (String line : Files.readAllLines(p)) {
      if (!line.isBlank()) {
        out.add(Long.parseLong(line.trim(), 16));
      }
    }
    return out;
  }

  /** Records {@code gfns} (a restore's demand order) as this snapshot's working set. */
  public void recordWorkingSet(List<Long> gfns) throws IOException {
    StringBuilder sb = new StringBuilder();
    for (long g : gfns) {
      sb.append(Long.toHexString(g)).append('\n');
    }
    Files.writeString(dir.resolve("workingset"), sb);
  }

  static GmemException corrupt(String why) {
    return new GmemException(Errno.EIO, "snapshot: " + why);
  }
}
