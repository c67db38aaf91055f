package dev.gmem.core.conformance;

import static org.junit.jupiter.api.Assertions.fail;

import dev.gmem.api.Fallocate;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.lifecycle.AddLifecycleHook;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.LifecycleContext;
import net.jqwik.api.lifecycle.SkipExecutionHook;

/**
 * One random call sequence, run on raw guest_memfds of this machine's KVM ({@link RawKernel}: JNR
 * straight to the kernel, no gmem code) and through gmem's public API on each backend; every
 * op's outcome — the errno, or the value a read returns — must be the same on both sides.
 *
 * <p>Compared, with the kernel answering on the raw side: creation, fallocate, mmap, memslot
 * bind/delete (KVM_SET_USER_MEMORY_REGION2) and their errnos; host reads and writes of 8 bytes
 * through a mapping, done as the kernel copies ({@code write(pipe, addr)} / {@code read(pipe, addr)},
 * EFAULT where a user access would SIGBUS) at the mapping's address on both sides, and through
 * gmem's accessors, whose contract (a fault for a page the host may not touch, or a prot the
 * mapping lacks) is compared with the kernel's copy on the raw side.
 *
 * <p>Conversions: 6.18 cannot convert a guest_memfd in place, so the raw side cannot be asked
 * whether one succeeds. Its outcome on the raw side is upstream's rule ({@code
 * KVM_SET_MEMORY_ATTRIBUTES2}: EBADF, then EINVAL for a bad target or a zero, unaligned,
 * overflowing or out-of-file range; no pins here, so never EAGAIN), and its effect is expressed
 * with real kernel objects: each raw file has a witness guest_memfd in the other state (MMAP-only
 * for a shared file, MMAP|INIT_SHARED for a private one); a converted page is read and written
 * through the witness, punched in both. So what a conversion does to later host access — EFAULT,
 * or the bytes written while the page was shared — is still the kernel's answer.
 *
 * <p>Not compared: guest access (no vCPU here), allocation and residency, and the errno of a
 * conversion (the raw side's expectation, not a kernel answer).
 */
@AddLifecycleHook(DifferentialTest.NeedsKvm.class)
class DifferentialTest {
  static final long PAGE = 4096;
  /** Memslots go above 4 GiB on both sides. */
  static final long GPA_BASE = 1L << 32;
  /** Enough reserved address space for every {@code userspace_addr} a raw bind can ask for. */
  static final long UADDR_SPACE = 64 * PAGE;

  /** Skips the property, saying why, where the host has no kernel guest_memfd to compare with (no KVM, or none built in). */
  static final class NeedsKvm implements SkipExecutionHook {
    @Override
    public SkipResult shouldBeSkipped(LifecycleContext context) {
      return Backends.noKernelGuestMemfd().map(SkipResult::skip).orElse(SkipResult.doNotSkip());
    }
  }

  /** How a host access is made. */
  enum Via {
    /** The kernel copies at the mapping's address (raw process memory). */
    KERNEL,
    /** gmem's accessor; on the raw side, the kernel's copy under the accessor's prot rule. */
    ACCESSOR
  }

  sealed interface Op permits Create, Falloc, MapOp, Access, Convert, Bind, Unbind, CloseFile, CloseMap {}

  record Create(long size, long flags) implements Op {}

  record Falloc(int file, int mode, long offset, long length) implements Op {}

  record MapOp(int file, long offset, long length, int prot, int flags) implements Op {}

  record Access(int map, long slot, Via via, boolean write, long value) implements Op {}

  record Convert(int file, long offset, long length, Shareability target) implements Op {}

  record Bind(int slot, int file, long gpa, long size, long offset) implements Op {}

  record Unbind(int slot) implements Op {}

  record CloseFile(int file) implements Op {}

  record CloseMap(int map) implements Op {}

  /**
   * A few valid files, each mapped whole, then random calls: so that most calls reach a file or a
   * mapping, and a few are still made without one.
   */
  @Provide
  Arbitrary<List<Op>> sequences() {
    Arbitrary<Create> file = Combinators.combine(Arbitraries.longs().between(1, 6).map(p -> p * PAGE),
            Arbitraries.of(GmemFlags.MMAP | GmemFlags.INIT_SHARED, GmemFlags.MMAP))
        .as(Create::new);
    // Some mappings end inside a page: the kernel maps that page whole.
    Arbitrary<Long> shortBy = Arbitraries.of(0L, 0L, 8L, PAGE - 8);
    return Combinators.combine(file.list().ofMinSize(1).ofMaxSize(3), shortBy.list().ofSize(3), ops().list().ofMinSize(5).ofMaxSize(40)).as((files, cut, rest) -> {
      List<Op> ops = new ArrayList<>(files);
      for (int i = 0; i < files.size(); i++) {
        ops.add(new MapOp(i, 0, files.get(i).size() - cut.get(i), 3, RawKernel.MAP_SHARED));
      }
      ops.addAll(rest);
      return ops;
    });
  }

  Arbitrary<Op> ops() {
    Arbitrary<Long> pages = Arbitraries.longs().between(0, 6).map(p -> p * PAGE);
    Arbitrary<Long> offsets = Arbitraries.frequencyOf(Tuple.of(6, pages), Tuple.of(1, Arbitraries.of(1L, PAGE - 1, -PAGE, 8 * PAGE)));
    Arbitrary<Long> lengths = Arbitraries.frequencyOf(Tuple.of(6, pages), Tuple.of(1, Arbitraries.of(1L, PAGE + 1, 20000L, -PAGE)));
    Arbitrary<Integer> idx = Arbitraries.integers().between(0, 3);
    Arbitrary<Op> create = Combinators.combine(
            Arbitraries.frequencyOf(Tuple.of(8, Arbitraries.longs().between(1, 6).map(p -> p * PAGE)), Tuple.of(1, Arbitraries.of(0L, 1L, PAGE + 1, -PAGE))),
            Arbitraries.frequencyOf(Tuple.of(4, Arbitraries.just(GmemFlags.MMAP | GmemFlags.INIT_SHARED)), Tuple.of(3, Arbitraries.just(GmemFlags.MMAP)),
                Tuple.of(1, Arbitraries.of(0L, GmemFlags.INIT_SHARED, 4L, 1L << 40))))
        .as(Create::new);
    Arbitrary<Op> falloc = Combinators.combine(idx,
            Arbitraries.frequencyOf(Tuple.of(4, Arbitraries.just(Fallocate.KEEP_SIZE | Fallocate.PUNCH_HOLE)), Tuple.of(2, Arbitraries.just(Fallocate.KEEP_SIZE)),
                Tuple.of(1, Arbitraries.of(0, Fallocate.PUNCH_HOLE, 0x11, 0x13))),
            offsets, lengths)
        .as(Falloc::new);
    Arbitrary<Op> map = Combinators.combine(idx, offsets, Arbitraries.frequencyOf(Tuple.of(6, pages), Tuple.of(1, Arbitraries.of(20000L, 1L, 0L))),
            Arbitraries.frequencyOf(Tuple.of(6, Arbitraries.just(3)), Tuple.of(1, Arbitraries.of(0, 1, 2, 7))),
            Arbitraries.frequencyOf(Tuple.of(5, Arbitraries.just(RawKernel.MAP_SHARED)), Tuple.of(1, Arbitraries.just(RawKernel.MAP_SHARED | 0x2000)),
                Tuple.of(1, Arbitraries.of(0, 2, 3, 0x8001, 0x18001, 0x40001, 0x101, 0x80003))))
        .as(MapOp::new);
    Arbitrary<Op> access = Combinators.combine(idx, Arbitraries.longs().between(0, 6 * PAGE / 8), Arbitraries.of(Via.class), Arbitraries.of(true, false),
            Arbitraries.longs())
        .as(Access::new);
    Arbitrary<Op> convert = Combinators.combine(idx,
            Arbitraries.frequencyOf(Tuple.of(8, Arbitraries.longs().between(0, 4).map(p -> p * PAGE)), Tuple.of(1, offsets)),
            Arbitraries.frequencyOf(Tuple.of(8, Arbitraries.longs().between(1, 2).map(p -> p * PAGE)), Tuple.of(1, Arbitraries.of(0L, 1L, 6 * PAGE, -PAGE, Long.MAX_VALUE & -PAGE))),
            Arbitraries.frequencyOf(Tuple.of(8, Arbitraries.of(Shareability.SHARED, Shareability.PRIVATE)), Tuple.of(1, Arbitraries.just(Shareability.NONE))))
        .as(Convert::new);
    Arbitrary<Op> bind = Combinators.combine(Arbitraries.integers().between(0, 3), idx, pages, pages, offsets).as(Bind::new);
    return Arbitraries.frequencyOf(
        Tuple.of(2, create),
        Tuple.of(1, falloc),
        Tuple.of(2, map),
        Tuple.of(5, access),
        Tuple.of(3, convert),
        Tuple.of(1, bind),
        Tuple.of(1, Arbitraries.integers().between(0, 3).map(Unbind::new)),
        Tuple.of(1, idx.map(CloseFile::new)),
        Tuple.of(1, idx.map(CloseMap::new)));
  }

  private static final Map<String, GmemRuntime> RUNTIMES = new LinkedHashMap<>();

  private static GmemRuntime runtime(String backend) {
    return RUNTIMES.computeIfAbsent(backend, Backends::open);
  }

  @AfterContainer
  static void closeRuntimes() {
    RUNTIMES.values().forEach(GmemRuntime::close);
    RUNTIMES.clear();
  }

  @Property(tries = 150)
  void gmemAnswersEveryCallAsARawGuestMemfd(@ForAll("sequences") List<Op> ops) {
    List<String> kernel = new RawSide().run(ops);
    for (String backend : Backends.names().toList()) {
      List<String> gmem = new GmemSide(runtime(backend)).run(ops);
      for (int i = 0; i < ops.size(); i++) {
        if (!kernel.get(i).equals(gmem.get(i))) {
          fail(backend + ": op " + i + " " + ops.get(i) + ": kernel " + kernel.get(i) + ", gmem " + gmem.get(i) + "\nkernel: " + kernel + "\ngmem:   " + gmem);
        }
      }
    }
  }

  private static <T> T pick(List<T> list, int i) {
    return list.isEmpty() ? null : list.get(i % list.size());
  }

  /** The 8-byte cell an access touches: within the mapping's length, so never outside the mapping. */
  private static long cell(long mapLength, long slot) {
    return mapLength < 8 ? -1 : (slot % ((mapLength - 8) / 8 + 1)) * 8;
  }

  private static String kernelRead(long address) {
    try {
      return "= " + RawKernel.kernelRead(address);
    } catch (RawKernel.Failure e) {
      return e.errno;
    }
  }

  private static String kernelWrite(long address, long value) {
    return RawKernel.outcome(() -> RawKernel.kernelWrite(address, value));
  }

  /** The accessor's answer as the test compares it: a value, "ok", or "fault" (its EACCES/EFAULT). */
  private static String accessorOutcome(String kernelOutcome) {
    return kernelOutcome.equals("EFAULT") ? "fault" : kernelOutcome;
  }

  // ---- the raw side ------------------------------------------------------------------------

  /** A raw guest_memfd; {@code witness} stands for its pages in the other state. */
  private static final class RawFile {
    final long size;
    final long flags;
    int fd;
    int witness = -1;
    final BitSet converted = new BitSet();

    RawFile(int fd, long size, long flags) {
      this.fd = fd;
      this.size = size;
      this.flags = flags;
    }

    boolean nativelyShared() {
      return (flags & GmemFlags.INIT_SHARED) != 0;
    }
  }

  private static final class RawMap {
    final RawFile file;
    final long address;
    final long offset;
    final long length;
    final int prot;
    long witnessAddress;

    RawMap(RawFile file, long address, long offset, long length, int prot) {
      this.file = file;
      this.address = address;
      this.offset = offset;
      this.length = length;
      this.prot = prot;
    }
  }

  private static final class RawSide {
    private final List<RawFile> files = new ArrayList<>();
    private final List<RawMap> maps = new ArrayList<>();
    private int kvm;
    private int vm;
    private long uaddr;

    List<String> run(List<Op> ops) {
      List<String> out = new ArrayList<>();
      kvm = RawKernel.openKvm();
      try {
        vm = RawKernel.createVm(kvm, 0);
        uaddr = RawKernel.reserve(UADDR_SPACE) + UADDR_SPACE / 2;
        for (Op op : ops) {
          out.add(apply(op));
        }
      } finally {
        for (RawMap m : maps) {
          unmap(m);
        }
        for (RawFile f : files) {
          closeFile(f);
        }
        if (uaddr != 0) {
          RawKernel.munmap(uaddr - UADDR_SPACE / 2, UADDR_SPACE);
        }
        RawKernel.close(vm);
        RawKernel.close(kvm);
      }
      return out;
    }

    private String apply(Op op) {
      if (op instanceof Create c) {
        return RawKernel.outcome(() -> files.add(new RawFile(RawKernel.createGuestMemfd(vm, c.size(), c.flags()), c.size(), c.flags())));
      }
      if (op instanceof Falloc f) {
        RawFile file = pick(files, f.file());
        if (file == null) {
          return "no file";
        }
        String r = RawKernel.outcome(() -> RawKernel.fallocate(file.fd, f.mode(), f.offset(), f.length()));
        if (r.equals("ok") && file.witness >= 0 && (f.mode() & Fallocate.PUNCH_HOLE) != 0) {
          RawKernel.fallocate(file.witness, f.mode(), f.offset(), f.length());
        }
        return r;
      }
      if (op instanceof MapOp m) {
        RawFile file = pick(files, m.file());
        if (file == null) {
          return "no file";
        }
        return RawKernel.outcome(() -> {
          RawMap raw = new RawMap(file, RawKernel.mmap(0, m.length(), m.prot(), m.flags(), file.fd, m.offset()), m.offset(), m.length(), m.prot());
          maps.add(raw);
          if (file.witness >= 0) {
            mapWitness(raw);
          }
        });
      }
      if (op instanceof Access a) {
        RawMap m = pick(maps, a.map());
        if (m == null) {
          return "no mapping";
        }
        long off = cell(m.length, a.slot());
        if (off < 0) {
          return "too short";
        }
        long page = (m.offset + off) / PAGE;
        long address = (page < m.file.size / PAGE && m.file.converted.get((int) page) ? m.witnessAddress : m.address) + off;
        String r = a.write() ? kernelWrite(address, a.value()) : kernelRead(address);
        if (a.via() == Via.KERNEL) {
          return r;
        }
        int need = a.write() ? 2 : 1;
        return (m.prot & need) == 0 ? "fault" : accessorOutcome(r);
      }
      if (op instanceof Convert c) {
        RawFile file = pick(files, c.file());
        if (file == null) {
          return "no file";
        }
        return convert(file, c);
      }
      if (op instanceof Bind b) {
        RawFile file = pick(files, b.file());
        if (file == null) {
          return "no file";
        }
        long address = b.size() == 0 ? 0 : uaddr + b.offset();
        return RawKernel.outcome(() -> RawKernel.setUserMemoryRegion2(vm, b.slot(), Memslot.GUEST_MEMFD, GPA_BASE + b.gpa(), b.size(), address, file.fd, b.offset()));
      }
      if (op instanceof Unbind u) {
        return RawKernel.outcome(() -> RawKernel.setUserMemoryRegion2(vm, u.slot(), 0, 0, 0, 0, 0, 0));
      }
      if (op instanceof CloseFile c) {
        RawFile file = pick(files, c.file());
        if (file == null) {
          return "no file";
        }
        closeFile(file);
        return "closed";
      }
      RawMap m = pick(maps, ((CloseMap) op).map());
      if (m == null) {
        return "no mapping";
      }
      unmap(m);
      maps.remove(m);
      return "unmapped";
    }

    /** Upstream's checks in their order, then the pages' new home: the file or its witness. */
    private String convert(RawFile file, Convert c) {
      long off = c.offset();
      long len = c.length();
      if (file.fd < 0) {
        return "EBADF";
      }
      if (c.target() == Shareability.NONE || len <= 0 || off < 0 || off + len < off || ((off | len) & (PAGE - 1)) != 0 || off + len > file.size) {
        return "EINVAL";
      }
      boolean toShared = c.target() == Shareability.SHARED;
      if ((file.flags & GmemFlags.MMAP) != 0 && file.witness < 0) {
        // The witness is the other state: MMAP-only pages are private, INIT_SHARED ones shared.
        file.witness = RawKernel.createGuestMemfd(vm, file.size, GmemFlags.MMAP | (file.nativelyShared() ? 0 : GmemFlags.INIT_SHARED));
        maps.stream().filter(m -> m.file == file).forEach(RawSide::mapWitness);
      }
      file.converted.set((int) (off / PAGE), (int) ((off + len) / PAGE), toShared != file.nativelyShared());
      return "ok";
    }

    /** Maps the witness as {@code m} maps the file; the mapping keeps it alive once the file is closed. */
    private static void mapWitness(RawMap m) {
      m.witnessAddress = RawKernel.mmap(0, m.length, m.prot, RawKernel.MAP_SHARED, m.file.witness, m.offset);
    }

    private static void unmap(RawMap m) {
      RawKernel.munmap(m.address, m.length);
      if (m.witnessAddress != 0) {
        RawKernel.munmap(m.witnessAddress, m.length);
        m.witnessAddress = 0;
      }
    }

    /** Closes the fds; the number becomes -1, so a later call gets EBADF and never a reused fd. */
    private static void closeFile(RawFile f) {
      if (f.fd >= 0) {
        RawKernel.close(f.fd);
        f.fd = -1;
      }
      if (f.witness >= 0) {
        RawKernel.close(f.witness);
        f.witness = -1;
      }
    }
  }

  // ---- the gmem side -----------------------------------------------------------------------

  private static final class GmemSide {
    private final GmemRuntime runtime;
    private final List<GuestMemFile> files = new ArrayList<>();
    private final List<HostMapping> maps = new ArrayList<>();
    private Vm vm;

    GmemSide(GmemRuntime runtime) {
      this.runtime = runtime;
    }

    List<String> run(List<Op> ops) {
      List<String> out = new ArrayList<>();
      vm = runtime.createVm(VmType.SW_PROTECTED);
      try {
        for (Op op : ops) {
          try {
            out.add(apply(op));
          } catch (GmemException e) {
            out.add(e.errno().name());
          }
        }
      } finally {
        maps.forEach(HostMapping::close);
        files.forEach(GuestMemFile::close);
        vm.close();
      }
      return out;
    }

    private String apply(Op op) {
      if (op instanceof Create c) {
        files.add(vm.createGuestMemFile(c.size(), c.flags()));
        return "ok";
      }
      if (op instanceof Falloc f) {
        GuestMemFile file = pick(files, f.file());
        if (file == null) {
          return "no file";
        }
        file.fallocate(f.mode(), f.offset(), f.length());
        return "ok";
      }
      if (op instanceof MapOp m) {
        GuestMemFile file = pick(files, m.file());
        if (file == null) {
          return "no file";
        }
        maps.add(file.map(m.offset(), m.length(), m.prot(), m.flags()));
        return "ok";
      }
      if (op instanceof Access a) {
        HostMapping m = pick(maps, a.map());
        if (m == null) {
          return "no mapping";
        }
        long off = cell(m.length(), a.slot());
        if (off < 0) {
          return "too short";
        }
        if (a.via() == Via.KERNEL) {
          return a.write() ? kernelWrite(m.address() + off, a.value()) : kernelRead(m.address() + off);
        }
        try {
          if (a.write()) {
            m.putLong(off, a.value());
            return "ok";
          }
          return "= " + m.getLong(off);
        } catch (GmemException e) {
          return switch (e.errno()) {
            case EACCES, EFAULT -> "fault";
            default -> e.errno().name();
          };
        }
      }
      if (op instanceof Convert c) {
        GuestMemFile file = pick(files, c.file());
        if (file == null) {
          return "no file";
        }
        file.setShareability(c.offset(), c.length(), c.target());
        return "ok";
      }
      if (op instanceof Bind b) {
        GuestMemFile file = pick(files, b.file());
        if (file == null) {
          return "no file";
        }
        vm.setMemoryRegion(b.slot(), Memslot.GUEST_MEMFD, GPA_BASE + b.gpa(), b.size(), file, b.offset());
        return "ok";
      }
      if (op instanceof Unbind u) {
        vm.setMemoryRegion(u.slot(), 0, 0, 0, null, 0);
        return "ok";
      }
      if (op instanceof CloseFile c) {
        GuestMemFile file = pick(files, c.file());
        if (file == null) {
          return "no file";
        }
        file.close();
        return "closed";
      }
      HostMapping m = pick(maps, ((CloseMap) op).map());
      if (m == null) {
        return "no mapping";
      }
      m.close();
      maps.remove(m);
      return "unmapped";
    }
  }
}
