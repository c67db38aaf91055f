package dev.gmem.directmap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.PluginDescriptor;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.nio.ByteBuffer;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The flags come with the jar, per arch rule; without the feature they are EINVAL as on 6.18. */
class DirectMapFlagsTest {
  private static final long SIZE = 64 << 10;
  private static final long BOTH = GmemFlags.NO_DIRECT_MAP | GmemFlags.WRITE;

  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void theFeatureGivesBothFlagsMeaning(String backend) {
    try (GmemRuntime rt = Runtimes.open(backend)) {
      assertTrue(rt.plugins().ofKind(PluginDescriptor.Kind.FEATURE).stream().anyMatch(d -> d.id().equals(DirectMapProvider.ID)));
      for (VmType type : List.of(VmType.DEFAULT, VmType.SW_PROTECTED)) {
        Vm vm = rt.createVm(type);
        assertEquals(BOTH, vm.supportedGuestMemFlags() & BOTH, type + " shows both flags in its supported set");
        try (GuestMemFile f = vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED | BOTH)) {
          assertEquals(GmemFlags.MMAP | GmemFlags.INIT_SHARED | BOTH, f.flags());
          assertTrue(Runtimes.feature(rt).accounting(f.inode().ino()).isPresent(), "the inode lives in secret memory");
        }
      }
    }
  }

  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void withoutTheFeatureBothAreEinvalAndWriteStaysEinval(String backend) {
    try (GmemRuntime rt = Runtimes.withoutFeature(backend)) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      assertEquals(0, vm.supportedGuestMemFlags() & BOTH);
      for (long flag : new long[] {GmemFlags.NO_DIRECT_MAP, GmemFlags.WRITE}) {
        GmemException e = assertThrows(GmemException.class, () -> vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED | flag));
        assertEquals(Errno.EINVAL, e.errno());
      }
      try (GuestMemFile f = vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED)) {
        GmemException e = assertThrows(GmemException.class, () -> f.write(0, ByteBuffer.allocate(4096)));
        assertEquals(Errno.EINVAL, e.errno(), "6.18's guest_memfd has no write operation");
        assertEquals(0, f.inode().allocatedPages());
      }
    }
  }

  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void writeOnAFileWithoutTheFlagIsEnodevWhereTheFeatureIsOn(String backend) {
    try (GmemRuntime rt = Runtimes.open(backend);
        GuestMemFile f = rt.createVm(VmType.DEFAULT).createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.INIT_SHARED)) {
      GmemException e = assertThrows(GmemException.class, () -> f.write(0, ByteBuffer.allocate(4096)));
      assertEquals(Errno.ENODEV, e.errno());
      assertEquals(0, f.inode().allocatedPages());
    }
  }

  @org.junit.jupiter.api.Test
  void hugePagesWithNoDirectMapAreRefusedBeforeAnyMemoryIsTaken() {
    try (GmemRuntime rt = Runtimes.open("memfd")) {
      DirectMapFeature dm = Runtimes.feature(rt);
      GmemException e = assertThrows(GmemException.class,
          () -> dm.memory(12345, 2L << 20, GmemFlags.MMAP | GmemFlags.NO_DIRECT_MAP | GmemFlags.hugePageSize(21)));
      assertEquals(Errno.EINVAL, e.errno(), "v12 zaps only 4 KiB folios");
      assertEquals(0, dm.stats().inodes());
      assertTrue(dm.memory(12346, SIZE, GmemFlags.MMAP) == null, "no memory for inodes without NO_DIRECT_MAP");
    }
  }

  @ParameterizedTest
  @MethodSource("dev.gmem.directmap.Runtimes#backends")
  void tdxAndSnpRefuseNoDirectMapByTheirArchRule(String backend) {
    try (GmemRuntime rt = Runtimes.withTdxRule(backend)) {
      DirectMapFeature dm = Runtimes.feature(rt);
      for (VmType type : List.of(VmType.TDX, VmType.SNP)) {
        Vm vm = rt.createVm(type);
        assertEquals(0, vm.supportedGuestMemFlags() & GmemFlags.NO_DIRECT_MAP, type + " must not offer NO_DIRECT_MAP (v12)");
        long inodes = dm.stats().inodes();
        GmemException e = assertThrows(GmemException.class, () -> vm.createGuestMemFile(SIZE, GmemFlags.MMAP | GmemFlags.NO_DIRECT_MAP));
        assertEquals(Errno.EINVAL, e.errno());
        assertEquals(inodes, dm.stats().inodes(), "a refused creation takes no secret memory");
        try (GuestMemFile f = vm.createGuestMemFile(SIZE, GmemFlags.MMAP)) {
          assertTrue(dm.accounting(f.inode().ino()).isEmpty());
        }
      }
      // The same runtime still offers it where the arch allows it.
      assertEquals(GmemFlags.NO_DIRECT_MAP, rt.createVm(VmType.DEFAULT).supportedGuestMemFlags() & GmemFlags.NO_DIRECT_MAP);
    }
  }
}
