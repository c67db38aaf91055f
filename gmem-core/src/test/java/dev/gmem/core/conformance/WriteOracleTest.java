package dev.gmem.core.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.gmem.api.GmemException;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

/**
 * Without a plugin that gives {@code GUEST_MEMFD_FLAG_WRITE} meaning (core's own class path has
 * none), {@code GuestMemFile.write} answers as {@code write(2)} on a Linux 6.18 guest_memfd, which
 * has no write operation: EINVAL for every length and offset, on every kind of file — and the
 * NO_DIRECT_MAP and WRITE creation flags are EINVAL as the kernel's (the creation matrix of
 * {@link KernelOracleTest} covers every bit; this names the two).
 */
class WriteOracleTest {
  private static final long PAGE = 4096;
  private static final long SIZE = 16 * PAGE;
  private static final long[] FLAGS = {0, GmemFlags.MMAP, GmemFlags.INIT_SHARED, GmemFlags.MMAP | GmemFlags.INIT_SHARED};

  private static String gmem(Runnable call) {
    try {
      call.run();
      return "ok";
    } catch (GmemException e) {
      return e.errno().name();
    }
  }

  @Test
  void writeAndItsFlagsAreWhatTheKernelSaysWithoutAPlugin() {
    Backends.assumeKernelGuestMemfd();
    int kvm = RawKernel.openKvm();
    int rawVm = RawKernel.createVm(kvm, 0);
    try {
      for (String backend : Backends.names().toList()) {
        try (GmemRuntime rt = Backends.open(backend)) {
          Vm vm = rt.createVm(VmType.DEFAULT);
          for (long flag : new long[] {GmemFlags.NO_DIRECT_MAP, GmemFlags.WRITE, GmemFlags.NO_DIRECT_MAP | GmemFlags.WRITE | GmemFlags.MMAP}) {
            String kernel = RawKernel.outcome(() -> RawKernel.close(RawKernel.createGuestMemfd(rawVm, SIZE, flag)));
            assertEquals("EINVAL", kernel, "6.18 refuses flags 0x" + Long.toHexString(flag));
            assertEquals(kernel, gmem(() -> vm.createGuestMemFile(SIZE, flag).close()), backend + ": create with 0x" + Long.toHexString(flag));
          }
          for (long flags : FLAGS) {
            int raw = RawKernel.createGuestMemfd(rawVm, SIZE, flags);
            try (GuestMemFile f = vm.createGuestMemFile(SIZE, flags)) {
              for (int length : new int[] {0, 1, (int) PAGE, 2 * (int) PAGE}) {
                String kernel = RawKernel.outcome(() -> RawKernel.write(raw, new byte[length]));
                for (long offset : new long[] {0, PAGE, SIZE - PAGE, -PAGE}) {
                  String g = gmem(() -> f.write(offset, ByteBuffer.allocate(length)));
                  assertEquals(kernel, g, backend + ", flags 0x" + Long.toHexString(flags) + ": write(" + offset + ", " + length + ")");
                }
              }
              assertEquals(0, f.inode().allocatedPages(), "a refused write changes nothing");
            } finally {
              RawKernel.close(raw);
            }
          }
        }
      }
    } finally {
      RawKernel.close(rawVm);
      RawKernel.close(kvm);
    }
  }
}
