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
  /** 2: {@code memory.crc} holds a CRC32C per page (1 had none: corruption at rest went undetected). */
  private static final int VERSION = 2;
  /** CRC32C of a page of zeros: what {@code memory.crc} holds for a known-zero page. */
  static final int ZERO_CRC = crcOf(new byte[(int) PAGE], 0);

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
  private volatile int[] checksums;

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
    for (SlotMeta s : slotMetas) {
      if ((s.gpa() + s.size()) / PAGE > Integer.MAX_VALUE) {
        throw new GmemException(Errno.EOVERFLOW, "snapshot: memslot " + s.slot() + " ends at GPA 0x" + Long.toHexString(s.gpa() + s.size())
            + ", beyond the 8 TiB a snapshot's page numbering covers");
      }
    }
    java.io.ByteArrayOutputStream sums = new java.io.ByteArrayOutputStream();
    DataOutputStream crcOut = new DataOutputStream(sums);
    try (FileChannel img = FileChannel.open(dir.resolve("memory.img"), StandardOpenOption.CREATE, StandardOpenOption.WRITE,
        StandardOpenOption.TRUNCATE_EXISTING)) {
      byte[] page = new byte[(int) PAGE];
      for (SlotMeta s : slotMetas) {
        for (long p = 0; p < s.size() / PAGE; p++) {
          long gpa = s.gpa() + p * PAGE;
          readPage(vm, fileList.get(s.file()), s.offset() + p * PAGE, gpa, page);
          crcOut.writeInt(crcOf(page, 0));
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
    Files.write(dir.resolve("memory.crc"), sums.toByteArray());
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

  static int crcOf(byte[] b, int off) {
    java.util.zip.CRC32C c = new java.util.zip.CRC32C();
    c.update(b, off, (int) PAGE);
    return (int) c.getValue();
  }

  private static boolean isZero(byte[] page) {
    for (byte b : page) {
      if (b != 0) {
        return false;
      }
    }
    return true;
  }

  /**
   * Reads the snapshot in {@code dir}. EINVAL for something that is not one, or not whole: a
   * truncated or inconsistent {@code vm.meta}, a {@code memory.img} shorter than the memslots span,
   * checksums missing or of the wrong length. (Page content corrupted at rest is found by its
   * checksum when the page is served: the restore then fails, never installing it.)
   */
  public static Snapshot read(Path dir) throws IOException {
    Snapshot snap;
    try {
      snap = readMeta(dir);
    } catch (java.io.EOFException e) {
      throw GmemException.einval(dir + ": vm.meta is truncated");
    } catch (IllegalArgumentException e) {
      throw GmemException.einval(dir + ": vm.meta is corrupt: " + e.getMessage());
    }
    long span = 0;
    for (SlotMeta s : snap.slots) {
      if (s.file() < 0 || s.file() >= snap.files.size() || s.size() <= 0 || s.size() % PAGE != 0 || s.gpa() < 0 || s.gpa() % PAGE != 0
          || s.offset() < 0 || s.offset() % PAGE != 0 || s.offset() + s.size() > snap.files.get(s.file()).size()
          || (s.gpa() + s.size()) / PAGE > Integer.MAX_VALUE) {
        throw GmemException.einval(dir + ": vm.meta is corrupt: memslot " + s);
      }
      span = Math.max(span, s.gpa() + s.size());
    }
    for (FileMeta f : snap.files) {
      if (f.size() <= 0 || f.size() % PAGE != 0) {
        throw GmemException.einval(dir + ": vm.meta is corrupt: file of " + f.size() + " bytes");
      }
    }
    long image = Files.size(dir.resolve("memory.img"));
    if (image < span) {
      throw GmemException.einval(dir + ": memory.img is truncated: " + image + " bytes, the memslots span " + span);
    }
    snap.checksums();
    return snap;
  }

  /** The per-page checksums ({@code memory.crc}, slot order), loaded once. EINVAL when missing or of the wrong length. */
  int[] checksums() throws IOException {
    int[] c = checksums;
    if (c == null) {
      Path p = dir.resolve("memory.crc");
      if (!Files.exists(p)) {
        throw GmemException.einval(dir + ": no memory.crc: not a whole snapshot of version " + VERSION);
      }
      long pages = pages();
      if (Files.size(p) != pages * 4) {
        throw GmemException.einval(dir + ": memory.crc holds " + Files.size(p) / 4 + " checksums for " + pages + " pages");
      }
      java.nio.IntBuffer b = ByteBuffer.wrap(Files.readAllBytes(p)).asIntBuffer();
      c = new int[b.remaining()];
      b.get(c);
      checksums = c;
    }
    return c;
  }

  /** The stored checksum of page {@code gfn} ({@link #checksums} loaded first). */
  int crc32c(long gfn) {
    long at = 0;
    for (SlotMeta s : slots) {
      long first = s.gpa() / PAGE;
      if (Long.compareUnsigned(gfn - first, s.size() / PAGE) < 0) {
        return checksums[(int) (at + gfn - first)];
      }
      at += s.size() / PAGE;
    }
    throw corrupt("GFN 0x" + Long.toHexString(gfn) + " lies in no memslot of the snapshot");
  }

  private static Snapshot readMeta(Path dir) throws IOException {
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
    checksums();
    BitSet zero = zeroPages();
    int chunk = 256 * (int) PAGE;
    ByteBuffer b = ByteBuffer.allocate(chunk);
    try (FileChannel img = FileChannel.open(dir.resolve("memory.img"), StandardOpenOption.READ)) {
      for (long off = 0; off < s.size(); off += chunk) {
        int len = (int) Math.min(chunk, s.size() - off);
        b.clear().limit(len);
        while (b.hasRemaining()) {
          if (img.read(b, s.gpa() + off + b.position()) < 0) {
            throw corrupt("memory.img ends inside memslot " + s.slot()); // never the last chunk's bytes or zeros instead
          }
        }
        for (int p = 0; p < len; p += (int) PAGE) {
          long gfn = (s.gpa() + off + p) / PAGE;
          boolean isZero = gfn < Integer.MAX_VALUE && zero.get((int) gfn);
          if (crc32c(gfn) != (isZero ? ZERO_CRC : crcOf(b.array(), p))) {
            throw corrupt("GFN 0x" + Long.toHexString(gfn) + " does not match its checksum: memory.img or zero.bits changed on disk");
          }
          if (!isZero) {
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
        try {
          out.add(Long.parseUnsignedLong(line.trim(), 16));
        } catch (NumberFormatException e) {
          throw GmemException.einval(p + ": not a GFN: " + line);
        }
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
