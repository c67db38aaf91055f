package dev.gmem.core.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.gmem.api.GmemException;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.Size;

/**
 * The same random call sequence on the kvm backend (real guest_memfd, real memslots) and on the
 * memfd backend gives identical results and errnos.
 */
class DifferentialTest {
  static final long PAGE = 4096;

  sealed interface Op permits Create, Falloc, MapOp, Access, Bind, Unbind, CloseFile, CloseMap {}

  record Create(long size, long flags) implements Op {}

  record Falloc(int file, int mode, long offset, long length) implements Op {}

  record MapOp(int file, long offset, long length, int prot, int flags) implements Op {}

  record Access(int map, long offset, boolean write, long value) implements Op {}

  record Bind(int slot, int file, long gpa, long size, long offset) implements Op {}

  record Unbind(int slot) implements Op {}

  record CloseFile(int file) implements Op {}

  record CloseMap(int map) implements Op {}

  @Provide
  Arbitrary<Op> ops() {
    Arbitrary<Long> pages = Arbitraries.longs().between(0, 6);
    Arbitrary<Long> offsets = Arbitraries.oneOf(pages.map(p -> p * PAGE), Arbitraries.longs().between(-1, 6 * PAGE));
    Arbitrary<Integer> idx = Arbitraries.integers().between(0, 3);
    return Arbitraries.oneOf(
        Combinators.combine(Arbitraries.oneOf(pages.map(p -> p * PAGE), Arbitraries.longs().between(0, 5 * PAGE)),
                Arbitraries.of(0L, 1L, 2L, 3L, 4L, 1L << 40))
            .as(Create::new),
        Combinators.combine(idx, Arbitraries.of(0, 1, 2, 3, 0x10, 0x11, 0x13), offsets, offsets).as(Falloc::new),
        Combinators.combine(idx, offsets, Arbitraries.oneOf(pages.map(p -> p * PAGE), Arbitraries.longs().between(0, 20000)),
                Arbitraries.of(1, 3, 5), Arbitraries.of(1, 2, 3, 0x8001))
            .as(MapOp::new),
        Combinators.combine(idx, Arbitraries.longs().between(0, 7 * PAGE), Arbitraries.of(true, false), Arbitraries.longs()).as(Access::new),
        Combinators.combine(Arbitraries.integers().between(0, 3), idx, pages.map(p -> p * PAGE), pages.map(p -> p * PAGE), offsets)
            .as(Bind::new),
        Arbitraries.integers().between(0, 3).map(Unbind::new),
        idx.map(CloseFile::new),
        idx.map(CloseMap::new));
  }

  @Property(tries = 60)
  void kvmAndMemfdAgree(@ForAll @Size(min = 1, max = 30) List<@net.jqwik.api.From("ops") Op> ops) {
    if (Backends.names().count() < 2) {
      return; // no /dev/kvm on this host: nothing to compare against
    }
    assertEquals(run("kvm", ops), run("memfd", ops));
  }

  private static List<String> run(String backend, List<Op> ops) {
    List<String> out = new ArrayList<>();
    try (GmemRuntime rt = Backends.open(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      List<GuestMemFile> files = new ArrayList<>();
      List<HostMapping> maps = new ArrayList<>();
      for (Op op : ops) {
        try {
          out.add(apply(vm, files, maps, op));
        } catch (GmemException e) {
          out.add(op + " -> " + e.errno());
        }
      }
    }
    return out;
  }

  private static <T> T pick(List<T> list, int i) {
    if (list.isEmpty()) {
      return null;
    }
    return list.get(i % list.size());
  }

  private static String apply(Vm vm, List<GuestMemFile> files, List<HostMapping> maps, Op op) {
    if (op instanceof Create c) {
      files.add(vm.createGuestMemFile(c.size(), c.flags()));
      return op + " -> ok";
    }
    if (op instanceof Falloc f) {
      GuestMemFile file = pick(files, f.file());
      if (file == null) {
        return op + " -> no file";
      }
      file.fallocate(f.mode(), f.offset(), f.length());
      return op + " -> ok, allocated " + file.inode().allocatedPages();
    }
    if (op instanceof MapOp m) {
      GuestMemFile file = pick(files, m.file());
      if (file == null) {
        return op + " -> no file";
      }
      maps.add(file.map(m.offset(), m.length(), m.prot(), m.flags()));
      return op + " -> ok";
    }
    if (op instanceof Access a) {
      HostMapping m = pick(maps, a.map());
      if (m == null) {
        return op + " -> no mapping";
      }
      if (a.write()) {
        m.putLong(a.offset(), a.value());
        return op + " -> ok";
      }
      return op + " -> " + m.getLong(a.offset());
    }
    if (op instanceof Bind b) {
      GuestMemFile file = pick(files, b.file());
      if (file == null) {
        return op + " -> no file";
      }
      Memslot s = vm.setMemoryRegion(b.slot(), Memslot.GUEST_MEMFD, b.gpa() + (1L << 32), b.size(), file, b.offset());
      return op + " -> ok " + s.slot();
    }
    if (op instanceof Unbind u) {
      vm.setMemoryRegion(u.slot(), 0, 0, 0, null, 0);
      return op + " -> ok";
    }
    if (op instanceof CloseFile c) {
      GuestMemFile file = pick(files, c.file());
      if (file != null) {
        file.close();
      }
      return op + " -> closed";
    }
    HostMapping m = pick(maps, ((CloseMap) op).map());
    if (m != null) {
      m.close();
    }
    return op + " -> unmapped";
  }
}
