package dev.gmem.core.conformance;

import static dev.gmem.core.conformance.Errnos.outcome;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Kvm;
import dev.gmem.core.sys.Sys;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The kernel is the oracle: for each call both can answer, gmem (on either backend) returns what a
 * raw guest_memfd on this machine's KVM returns, errno for errno.
 */
class KernelOracleTest {
  static final long PAGE = 4096;
  static final long SIZE = 4 * PAGE;
  private static final Sys SYS = Sys.load();
  private final Kvm kvm = new Kvm(SYS);
  private Fd device;
  private Fd vmFd;

  @BeforeEach
  void openKvm() {
    assumeTrue(Files.exists(Path.of("/dev/kvm")), "host has no /dev/kvm");
    device = kvm.openDevice();
    vmFd = kvm.createVm(device, 0);
  }

  @AfterEach
  void closeKvm() {
    if (vmFd != null) {
      vmFd.close();
      device.close();
    }
  }

  private static final long[] FLAGS = {0, GmemFlags.MMAP, GmemFlags.INIT_SHARED, GmemFlags.MMAP | GmemFlags.INIT_SHARED};

  @Test
  void creationMatchesTheKernel() {
    long[] sizes = {0, 1, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE, -PAGE, Long.MIN_VALUE, 1L << 40};
    for (String backend : Backends.names().toList()) {
      try (GmemRuntime rt = Backends.open(backend)) {
        Vm vm = rt.createVm(VmType.DEFAULT);
        for (int bit = 0; bit < 64; bit++) {
          for (long size : sizes) {
            long flags = bit == 63 ? 0 : 1L << bit;
            String kernel = outcome(() -> kvm.createGuestMemfd(vmFd, size, flags).close());
            String gmem = outcome(() -> vm.createGuestMemFile(size, flags).close());
            assertEquals(kernel, gmem, backend + ": create(size " + size + ", flags 0x" + Long.toHexString(flags) + ")");
          }
        }
      }
    }
  }

  @Test
  void fallocateMatchesTheKernel() {
    int[] modes = {0, 1, 2, 3, 4, 5, 0x8, 0x9, 0x10, 0x11, 0x13, 0x20, 0x21, 0x40, 0x41, 0x80, 0x81, 0x100, 0x101};
    long[] offsets = {0, 1, PAGE - 1, PAGE, 3 * PAGE, SIZE, SIZE + PAGE, 100 * PAGE, -PAGE, Long.MAX_VALUE & ~(PAGE - 1)};
    long[] lengths = {0, 1, PAGE, 2 * PAGE, SIZE, 10 * PAGE, -PAGE, 0x7ffffffffffff000L, Long.MAX_VALUE};
    List<String> mismatches = new ArrayList<>();
    for (String backend : Backends.names().toList()) {
      try (GmemRuntime rt = Backends.open(backend)) {
        Vm vm = rt.createVm(VmType.DEFAULT);
        try (Fd raw = kvm.createGuestMemfd(vmFd, SIZE, 0); GuestMemFile f = vm.createGuestMemFile(SIZE, 0)) {
          for (int mode : modes) {
            for (long off : offsets) {
              for (long len : lengths) {
                String kernel = outcome(() -> SYS.fallocate(raw.get(), mode, off, len));
                String gmem = outcome(() -> f.fallocate(mode, off, len));
                if (!kernel.equals(gmem)) {
                  mismatches.add(backend + ": fallocate(mode 0x" + Integer.toHexString(mode) + ", " + off + ", " + len + ") kernel " + kernel + " gmem " + gmem);
                }
              }
            }
          }
        }
      }
    }
    assertEquals(List.of(), mismatches.subList(0, Math.min(8, mismatches.size())), mismatches.size() + " mismatches");
  }

  @Test
  void mmapMatchesTheKernel() {
    int[] prots = {0, 1, 2, 3, 4, 5, 7};
    int[] mapFlags = {0, 1, 2, 3, 0x8001, 0x2001, 0x40001};
    long[] offsets = {0, 1, PAGE, SIZE, 8 * SIZE};
    long[] lengths = {PAGE, SIZE, 4 * SIZE};
    List<String> mismatches = new ArrayList<>();
    for (String backend : Backends.names().toList()) {
      try (GmemRuntime rt = Backends.open(backend)) {
        Vm vm = rt.createVm(VmType.DEFAULT);
        for (long flags : FLAGS) {
          try (Fd raw = kvm.createGuestMemfd(vmFd, SIZE, flags); GuestMemFile f = vm.createGuestMemFile(SIZE, flags)) {
            for (int prot : prots) {
              for (int mf : mapFlags) {
                for (long off : offsets) {
                  for (long len : lengths) {
                    String kernel = outcome(() -> SYS.munmap(SYS.mmap(0, len, prot, mf, raw.get(), off), len));
                    String gmem = outcome(() -> f.map(off, len, prot, mf).close());
                    if (!kernel.equals(gmem)) {
                      mismatches.add(backend + ": flags " + flags + " mmap(prot " + prot + ", flags 0x" + Integer.toHexString(mf) + ", off " + off + ", len " + len + ") kernel " + kernel + " gmem " + gmem);
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
    assertEquals(List.of(), mismatches.subList(0, Math.min(8, mismatches.size())), mismatches.size() + " mismatches");
  }

  @Test
  void hostAccessMatchesTheKernelSigbusRule() {
    // Kernel: MMAP-only pages SIGBUS (a syscall copy sees EFAULT); gmem: EACCES from the accessor,
    // EFAULT from the same syscall probe on its mapping.
    try (GmemRuntime rt = Backends.open("kvm")) {
      Vm vm = rt.createVm(VmType.DEFAULT);
      try (Fd raw = kvm.createGuestMemfd(vmFd, SIZE, GmemFlags.MMAP);
          GuestMemFile f = vm.createGuestMemFile(SIZE, GmemFlags.MMAP);
          HostMapping m = f.map()) {
        long rawMap = SYS.mmap(0, SIZE, 3, 1, raw.get(), 0);
        try {
          assertEquals(KernelCopy.read(rawMap, 8), KernelCopy.read(m.address(), 8));
          assertEquals(Errno.EFAULT, KernelCopy.read(m.address(), 8));
        } finally {
          SYS.munmap(rawMap, SIZE);
        }
      }
    }
  }
}
