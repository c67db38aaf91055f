package dev.gmem.arch.snp;

import static dev.gmem.arch.snp.SnpVms.BLOCKS;
import static dev.gmem.arch.snp.SnpVms.HUGE;
import static dev.gmem.arch.snp.SnpVms.PAGE;
import static dev.gmem.arch.snp.SnpVms.page;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;

/**
 * Random sequences of guest touches (PVALIDATE with its nested fault), conversions of random runs
 * and punches of whole 2 MiB pages over 2 MiB folios, with the RMP checked against gmem's own
 * state after every step: only private pages are assigned; a 2 MiB entry covers 512 private pages
 * at a 2 MiB aligned GPA, every one assigned with that size; PSMASH never undoes itself (the
 * count only grows) and happens only when a conversion or punch cuts a 2 MiB entry.
 */
class RmpPropertiesTest {
  static final long GPA = 0x4000_0000L;
  static final int PAGES = 2 * 512;

  record Op(int kind, int at, int length) {}

  private static GmemRuntime rt;

  @BeforeContainer
  static void open() {
    rt = SnpVms.hugeRuntime("memfd");
  }

  @AfterContainer
  static void close() {
    rt.close();
  }

  @Provide
  Arbitrary<List<Op>> ops() {
    Arbitrary<Op> op = Combinators.combine(Arbitraries.integers().between(0, 3), Arbitraries.integers().between(0, PAGES - 1),
        Arbitraries.of(1, 3, 512, 700)).as(Op::new);
    return op.list().ofMinSize(1).ofMaxSize(8);
  }

  @Property(tries = 20)
  void theRmpFollowsShareabilityAndEntrySizes(@ForAll("ops") List<Op> ops) {
    Vm vm = rt.createVm(VmType.SNP);
    try {
      SnpArch snp = SnpVms.arch(vm);
      GuestMemFile f = vm.createGuestMemFile(PAGES * PAGE, GmemFlags.MMAP | BLOCKS);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, PAGES * PAGE, f, 0);
      long psmashes = 0;
      for (Op op : ops) {
        int end = Math.min(PAGES, op.at() + op.length());
        long before = snp.psmashCount();
        boolean cuts2M = false;
        switch (op.kind()) {
          case 0 -> {
            try {
              SnpGuest.pvalidate(vm.softwareVcpu(), GPA + op.at() * PAGE, false, true);
            } catch (dev.gmem.api.MemoryExitException e) {
              // a shared page (memory-fault exit) or a second validation (#VC): the RMP must still hold
            }
          }
          case 1, 2 -> {
            cuts2M = cuts2M(snp, f, op.at(), end);
            f.setShareability(op.at() * PAGE, (end - op.at()) * PAGE, op.kind() == 1 ? Shareability.SHARED : Shareability.PRIVATE);
          }
          default -> {
            int h = op.at() / 512;
            f.punchHole(h * HUGE, HUGE);
          }
        }
        long now = snp.psmashCount();
        assertTrue(now >= before);
        if (now > before) {
          assertTrue(cuts2M || op.kind() == 0, "PSMASH only where a 2 MiB entry was cut: " + op);
        }
        psmashes = now;
        check(snp, f);
      }
      assertEquals(psmashes, snp.psmashCount());
      f.close();
    } finally {
      vm.close();
    }
  }

  private static boolean cuts2M(SnpArch snp, GuestMemFile f, int start, int end) {
    for (int p : new int[] {start, end - 1}) {
      RmpEntry e = snp.rmpEntry(page(f, p));
      if (e.assigned() && e.is2M() && (p / 512 * 512 < start || p / 512 * 512 + 512 > end)) {
        return true;
      }
    }
    return false;
  }

  private static void check(SnpArch snp, GuestMemFile f) {
    Shareability[] shareability = new Shareability[PAGES];
    for (var r : f.inode().shareabilityRanges(0, PAGES)) {
      for (long i = r.start(); i < r.end(); i++) {
        shareability[(int) i] = r.shareability();
      }
    }
    for (int i = 0; i < PAGES; i++) {
      RmpEntry e = snp.rmpEntry(page(f, i));
      if (!e.assigned()) {
        continue;
      }
      assertEquals(Shareability.PRIVATE, shareability[i], "assigned page " + i + " is private");
      assertEquals(GPA + i * PAGE, e.gpa());
      assertEquals(snp.asid(), e.asid());
      if (e.is2M()) {
        int base = i / 512 * 512;
        assertEquals(0, (GPA + base * PAGE) % HUGE);
        for (int j = base; j < base + 512; j++) {
          RmpEntry s = snp.rmpEntry(page(f, j));
          assertTrue(s.assigned() && s.is2M() && s.validated() == e.validated(), "2 MiB entry at " + base + " whole at " + j);
        }
      }
    }
  }
}
