package dev.gmem.directmap;

import dev.gmem.api.GmemException;
import dev.gmem.core.convert.TestInode;
import dev.gmem.core.sys.Sys;
import jnr.ffi.LibraryLoader;
import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;

/**
 * The kernel's own ways into user memory, on an address: GUP ({@code vmsplice},
 * {@code process_vm_readv}) and {@code copy_from_user} ({@code write} to a pipe). Each answers
 * with the errno instead of faulting, so tests probe pages no Java load may touch.
 */
final class KernelPaths {
  /** Test-only binding of the two GUP paths core does not bind. */
  public interface Gup {
    long vmsplice(int fd, Pointer iov, long nrSegs, int flags);

    long process_vm_readv(int pid, Pointer local, long liovcnt, Pointer remote, long riovcnt, long flags);

    int getpid();
  }

  private static final Gup GUP = LibraryLoader.create(Gup.class).load("c");
  private static final Runtime RT = Runtime.getRuntime(GUP);
  private static final Sys SYS = TestInode.SYS;

  private KernelPaths() {}

  private static Pointer iovec(long addr, long len) {
    Pointer p = Memory.allocateDirect(RT, 16);
    p.putLong(0, addr);
    p.putLong(8, len);
    return p;
  }

  /** 0 when {@code vmsplice} of {@code [addr, addr+len)} into a pipe took the pages (GUP), else the errno. */
  static int vmsplice(long addr, long len) {
    int[] pipe = SYS.pipe();
    try {
      long r = GUP.vmsplice(pipe[1], iovec(addr, len), 1, 0);
      return r >= 0 ? 0 : RT.getLastError();
    } finally {
      SYS.closeQuietly(pipe[0]);
      SYS.closeQuietly(pipe[1]);
    }
  }

  /** 0 when {@code process_vm_readv} of our own {@code [addr, addr+len)} worked (GUP of the remote side), else the errno. */
  static int processVmReadv(long addr, long len) {
    Pointer local = Memory.allocateDirect(RT, (int) len);
    long r = GUP.process_vm_readv(GUP.getpid(), iovec(local.address(), len), 1, iovec(addr, len), 1, 0);
    return r >= 0 ? 0 : RT.getLastError();
  }

  /** 0 when {@code write(pipe, addr, len)} (copy_from_user through the page tables) worked, else the errno. */
  static int copyFromUser(long addr, long len) {
    int[] pipe = SYS.pipe();
    try {
      SYS.write(pipe[1], addr, len);
      return 0;
    } catch (GmemException e) {
      return e.errno().code();
    } finally {
      SYS.closeQuietly(pipe[0]);
      SYS.closeQuietly(pipe[1]);
    }
  }
}
