package dev.gmem.core.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;
import static org.mockito.ArgumentMatchers.any;
import static org.mockito.ArgumentMatchers.anyInt;
import static org.mockito.ArgumentMatchers.anyLong;
import static org.mockito.ArgumentMatchers.eq;
import static org.mockito.Mockito.mock;
import static org.mockito.Mockito.verify;
import static org.mockito.Mockito.when;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.HostInfo;
import dev.gmem.api.KvmCapability;
import dev.gmem.api.Shareability;
import dev.gmem.api.VmType;
import dev.gmem.core.convert.TestInode;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Kvm;
import dev.gmem.core.sys.Sys;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/**
 * The in-place conversion probe and the pass-through it selects. The probe answers by behaviour;
 * on a 6.18 host it finds nothing. The pass-through path is driven here by a probe result of
 * "present" over a KVM binding that records what would reach the kernel.
 */
class InPlaceConversionTest {
  private static final Sys SYS = TestInode.SYS;
  static final long SHARED = GmemFlags.MMAP | GmemFlags.INIT_SHARED;

  @Test
  void probeAnswersAsTheKernelBehaves() {
    assumeTrue(Files.exists(Path.of("/dev/kvm")), "host has no /dev/kvm");
    Kvm kvm = new Kvm(SYS);
    try (Fd device = kvm.openDevice(); Fd vm = kvm.createVm(device, 0)) {
      // The kernel's own answer, with the probe's steps: a kernel without guest_memfd fails the
      // creation, one without per-file attributes the conversion; both with ENOTTY.
      Errno raw = null;
      try (Fd gmem = kvm.createGuestMemfd(vm, 4096, SHARED)) {
        kvm.setMemoryAttributes2(gmem, 0, 4096, 0);
      } catch (GmemException e) {
        raw = e.errno();
      }
      InPlaceConversion probed = InPlaceConversion.probe(kvm, device);
      assertEquals(raw == null, probed.present(), "the probe says what the ioctls did (" + raw + ")");
      if (raw != null) {
        assertEquals(Errno.ENOTTY, raw, "no guest_memfd, or no ioctl on one: ENOTTY");
      }
    }
  }

  @Test
  void realFlagsKeepInitSharedOnlyWhereTheKernelConverts() {
    long privateFile = GmemFlags.MMAP;
    assertEquals(SHARED, InPlaceConversion.ABSENT.realFlags(true, privateFile), "6.18: the kernel could never share it later");
    assertEquals(SHARED, new InPlaceConversion(true).realFlags(false, privateFile), "a kernel type without private memory");
    assertEquals(GmemFlags.MMAP, new InPlaceConversion(true).realFlags(true, privateFile), "the kernel keeps it private");
    assertEquals(SHARED, new InPlaceConversion(true).realFlags(true, SHARED));
    assertEquals(false, InPlaceConversion.ABSENT.passesThrough(true));
  }

  private static HostInfo offering(long vmTypes) {
    return new HostInfo("test", true, Optional.empty(), 12, Map.of(KvmCapability.GUEST_MEMFD, 1L), 3, vmTypes, true, true, List.of());
  }

  private static Fd memfd() {
    return new Fd(SYS, SYS.memfdCreate("in-place-test", Sys.MFD_CLOEXEC), "memfd");
  }

  @Test
  void presentAndOfferedPassesThroughCreationAndConversion() {
    Kvm kvm = mock(Kvm.class);
    when(kvm.sys()).thenReturn(SYS);
    Fd vm = memfd();
    Fd gmem = memfd();
    when(kvm.createVm(any(), eq(VmType.SW_PROTECTED.kvmType()))).thenReturn(vm);
    when(kvm.createGuestMemfd(any(), anyLong(), anyLong())).thenReturn(gmem);
    KvmBackend backend = new KvmBackend(kvm, offering(0b11), memfd(), new InPlaceConversion(true));
    try (BackendVm bvm = backend.createVm(VmType.SW_PROTECTED)) {
      assertSame(gmem, bvm.createMemory(1 << 20, GmemFlags.MMAP));
      verify(kvm).createGuestMemfd(vm, 1 << 20, GmemFlags.MMAP);
      bvm.kernelAttributes().set(gmem, 4096, 8192, true);
      verify(kvm).setMemoryAttributes2(gmem, 4096, 8192, Kvm.MEMORY_ATTRIBUTE_PRIVATE);
      bvm.kernelAttributes().set(gmem, 0, 4096, false);
      verify(kvm).setMemoryAttributes2(gmem, 0, 4096, 0);
    } finally {
      gmem.close();
      backend.close();
    }
  }

  @Test
  void absentOrNotOfferedKeepsGmemsOwnEnforcement() {
    Kvm kvm = mock(Kvm.class);
    when(kvm.sys()).thenReturn(SYS);
    when(kvm.createVm(any(), anyInt())).thenAnswer(i -> memfd());
    when(kvm.createGuestMemfd(any(), anyLong(), anyLong())).thenAnswer(i -> memfd());
    for (KvmBackend backend : List.of(new KvmBackend(kvm, offering(0b11), memfd(), InPlaceConversion.ABSENT),
        new KvmBackend(kvm, offering(0b01), memfd(), new InPlaceConversion(true)))) {
      try (BackendVm bvm = backend.createVm(VmType.SW_PROTECTED); Fd m = bvm.createMemory(4096, GmemFlags.MMAP)) {
        assertSame(KernelAttributes.NONE, bvm.kernelAttributes());
      } finally {
        backend.close();
      }
    }
    verify(kvm, org.mockito.Mockito.times(2)).createGuestMemfd(any(), eq(4096L), eq(SHARED));
  }

  /** The engine asks the kernel last before its point of no return; a refusal changes nothing. */
  @Test
  void conversionGoesToTheKernelLastAndItsRefusalChangesNothing() {
    List<String> calls = new ArrayList<>();
    try (TestInode t = new TestInode(4, true)) {
      t.inode.passConversionsTo((memory, offset, size, toPrivate) -> {
        calls.add(offset + "+" + size + (toPrivate ? " private" : " shared"));
        if (offset == 3 * 4096) {
          throw GmemException.atOffset(Errno.EAGAIN, offset, "the kernel found a reference");
        }
      });
      t.inode.convert(4096, 8192, Shareability.PRIVATE);
      assertEquals(Shareability.PRIVATE, t.inode.shareability(2));
      GmemException e = assertThrows(GmemException.class, () -> t.inode.convert(3 * 4096, 4096, Shareability.PRIVATE));
      assertEquals(Errno.EAGAIN, e.errno());
      assertEquals(Shareability.SHARED, t.inode.shareability(3), "a refused conversion changes nothing");
      t.inode.convert(4096, 4096, Shareability.SHARED);
      assertEquals(List.of("4096+8192 private", "12288+4096 private", "4096+4096 shared"), calls);
    }
  }
}
