package dev.gmem.arch.snp;

import static dev.gmem.arch.snp.PageStateChange.OP_PRIVATE;
import static dev.gmem.arch.snp.PageStateChange.OP_PSMASH;
import static dev.gmem.arch.snp.PageStateChange.OP_SHARED;
import static dev.gmem.arch.snp.PageStateChange.entry;
import static dev.gmem.arch.snp.SnpVms.PAGE;
import static dev.gmem.core.conformance.Errnos.expect;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemFlags;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.GuestCall;
import dev.gmem.api.GuestMemFile;
import dev.gmem.api.HostMapping;
import dev.gmem.api.Memslot;
import dev.gmem.api.Shareability;
import dev.gmem.api.SoftwareVcpu;
import dev.gmem.api.VcpuExit;
import dev.gmem.api.Vm;
import dev.gmem.api.VmType;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Page State Change requests as KVM turns them into {@code KVM_HC_MAP_GPA_RANGE} exits: the GHCB MSR
 * protocol (one page), the PSC buffer (runs of like, adjacent entries coalesced; 2 MiB entries;
 * a partly done 2 MiB entry resumed at 4 KiB; PSMASH operations completed without an exit; the
 * header and entry checks) and a non-zero VMM answer as the PSC error the guest sees. End to end:
 * the guest rescinds, asks, the VMM converts, the host reads what the guest then wrote.
 */
class PageStateChangeTest {
  static final long GPA = 0x40_0000;

  static java.util.stream.Stream<String> backends() {
    return SnpVms.backends();
  }

  private static List<VcpuExit.Hypercall> drain(GuestCall call, long ret) {
    List<VcpuExit.Hypercall> exits = new ArrayList<>();
    for (VcpuExit.Hypercall h; (h = call.pendingExit()) != null; ) {
      exits.add(h);
      call.complete(ret);
    }
    return exits;
  }

  @ParameterizedTest
  @MethodSource("backends")
  void theGuestSharesAPageWithTheMsrProtocolAndTheHostReadsIt(String backend) {
    try (GmemRuntime rt = SnpVms.runtime(backend)) {
      Vm vm = rt.createVm(VmType.SNP);
      GuestMemFile f = vm.createGuestMemFile(4 * PAGE, GmemFlags.MMAP);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, GPA, 4 * PAGE, f, 0);
      vm.finalizeLaunch();
      SoftwareVcpu cpu = vm.softwareVcpu();
      assertEquals(SnpArch.PVALIDATE_SUCCESS, SnpGuest.pvalidate(cpu, GPA + PAGE, false, true));
      cpu.writeLong(GPA + PAGE, 0x5ec7e7L, true);

      assertEquals(SnpArch.PVALIDATE_SUCCESS, SnpGuest.pvalidate(cpu, GPA + PAGE, false, false), "rescind before sharing");
      GuestCall call = SnpGuest.pageStateChangeMsr(cpu, GPA + PAGE, OP_SHARED);
      assertEquals(VcpuExit.Hypercall.mapGpaRange(GPA + PAGE, 1, VcpuExit.Hypercall.DECRYPTED), call.pendingExit());
      f.setShareability(PAGE, PAGE, Shareability.SHARED); // the VMM's part
      call.complete(0);
      assertEquals(PageStateChange.GHCB_MSR_PSC_RESP, call.result().value());

      try (HostMapping m = f.map()) {
        long seen = m.getLong(PAGE);
        assertEquals(0xa5a5a5a5a5a5a5a5L, seen, "ciphertext: never the plaintext the guest wrote privately");
        cpu.writeLong(GPA + PAGE, 0x5ca1ab1eL, false); // the guest writes through its shared (C-bit clear) mapping
        assertEquals(0x5ca1ab1eL, m.getLong(PAGE));
      }

      GuestCall refused = SnpGuest.pageStateChangeMsr(cpu, GPA + 2 * PAGE, OP_SHARED);
      assertEquals(1, drain(refused, 1).size());
      assertEquals(PageStateChange.GHCB_MSR_PSC_RESP_ERROR, refused.result().value(), "the VMM's non-zero answer");
      assertEquals(PageStateChange.GHCB_MSR_PSC_RESP_ERROR, cpu.hypercall(SnpArch.VMGEXIT_MSR, PageStateChange.msrRequest(GPA >>> 12, 7)).result().value(),
          "an unknown operation, without an exit");
      assertEquals(Shareability.PRIVATE, f.shareability(2 * PAGE, PAGE).orElseThrow());
    }
  }

  @ParameterizedTest
  @MethodSource("backends")
  void aGuestShares2MiBWithOnePscBufferEntryAndTakesItBack(String backend) {
    long huge = SnpVms.HUGE;
    long base = 0x4000_0000L;
    try (GmemRuntime rt = SnpVms.hugeRuntime(backend)) {
      Vm vm = rt.createVm(VmType.SNP);
      SnpArch snp = SnpVms.arch(vm);
      GuestMemFile f = vm.createGuestMemFile(huge, GmemFlags.MMAP | SnpVms.BLOCKS);
      vm.setMemoryRegion(0, Memslot.GUEST_MEMFD, base, huge, f, 0);
      vm.finalizeLaunch();
      SoftwareVcpu cpu = vm.softwareVcpu();
      assertEquals(SnpArch.PVALIDATE_SUCCESS, SnpGuest.pvalidate(cpu, base, true, true));
      assertEquals(SnpArch.PVALIDATE_SUCCESS, SnpGuest.pvalidate(cpu, base, true, false));

      GuestCall share = snp.pageStateChange(PageStateChange.buffer(entry(base >>> 12, OP_SHARED, true, 0)));
      VcpuExit.Hypercall exit = share.pendingExit();
      assertEquals(VcpuExit.Hypercall.mapGpaRange(base, 512, VcpuExit.Hypercall.DECRYPTED | VcpuExit.Hypercall.PAGE_SZ_2M), exit);
      f.setShareability(0, exit.arg(1) * PAGE, Shareability.SHARED);
      share.complete(0);
      assertEquals(0, share.result().value());
      assertEquals(0, snp.assignedPages());
      assertEquals(0, snp.psmashCount(), "the whole 2 MiB entry went back at once");

      GuestCall take = snp.pageStateChange(PageStateChange.buffer(entry(base >>> 12, OP_PRIVATE, true, 0)));
      f.setShareability(0, take.pendingExit().arg(1) * PAGE, Shareability.PRIVATE);
      take.complete(0);
      assertEquals(SnpArch.PVALIDATE_SUCCESS, SnpGuest.pvalidate(cpu, base, true, true));
      assertTrue(snp.rmpEntry(SnpVms.page(f, 100)).is2M(), "private again at 2 MiB");
      assertNull(cpu.write(base + 100 * PAGE, new byte[] {1}, 0, 1, true));
    }
  }

  @Test
  void pscBufferEntriesAreCoalescedIntoExitsAndAdvancedInPlace() {
    try (GmemRuntime rt = SnpVms.runtime("memfd")) {
      SnpArch snp = SnpVms.arch(rt.createVm(VmType.SNP));
      ByteBuffer buf = PageStateChange.buffer(
          entry(0x400, OP_SHARED, false, 0), entry(0x401, OP_SHARED, false, 0), entry(0x402, OP_SHARED, false, 0),
          entry(0x600, OP_PRIVATE, true, 0), entry(0x800, OP_PRIVATE, true, 0),
          entry(0xa00, OP_PSMASH, true, 0),
          entry(0xc00, OP_SHARED, true, 0x100));
      GuestCall call = snp.pageStateChange(buf);
      long enc = VcpuExit.Hypercall.ENCRYPTED;
      assertEquals(List.of(
          VcpuExit.Hypercall.mapGpaRange(0x400_000, 3, VcpuExit.Hypercall.DECRYPTED),
          VcpuExit.Hypercall.mapGpaRange(0x600_000, 1024, enc | VcpuExit.Hypercall.PAGE_SZ_2M),
          VcpuExit.Hypercall.mapGpaRange(0xd00_000, 256, VcpuExit.Hypercall.DECRYPTED | VcpuExit.Hypercall.PAGE_SZ_2M)), drain(call, 0),
          "three adjacent 4 KiB, two adjacent 2 MiB, the PSMASH without an exit, the rest of a half-done 2 MiB entry at 4 KiB");
      assertEquals(0, call.result().value());
      assertEquals(7, buf.getShort(0), "cur_entry past the end");
      assertEquals(512, buf.getLong(8 + 8 * 3) & 0xfff, "cur_page of a done 2 MiB entry");

      ByteBuffer failing = PageStateChange.buffer(entry(0x400, OP_SHARED, false, 0), entry(0x500, OP_SHARED, false, 0));
      GuestCall f = snp.pageStateChange(failing);
      f.complete(0);
      f.complete(-1);
      assertNull(f.pendingExit());
      assertEquals(PageStateChange.PSC_ERROR_GENERIC, f.result().value());
      assertEquals(1, failing.getShort(0), "resumable at the entry that failed");
    }
  }

  @Test
  void badHeadersAndEntriesAreRefusedWithoutAnExit() {
    try (GmemRuntime rt = SnpVms.runtime("memfd")) {
      SnpArch snp = SnpVms.arch(rt.createVm(VmType.SNP));
      ByteBuffer tooLong = PageStateChange.buffer(entry(0x400, OP_SHARED, false, 0));
      tooLong.putShort(2, (short) 1); // end_entry beyond the buffer
      GuestCall c = snp.pageStateChange(tooLong);
      assertNull(c.pendingExit());
      assertEquals(PageStateChange.PSC_ERROR_INVALID_HDR, c.result().value());
      ByteBuffer max = ByteBuffer.allocate(8 + 8 * 300).order(java.nio.ByteOrder.LITTLE_ENDIAN).putShort(2, (short) 253);
      assertEquals(PageStateChange.PSC_ERROR_INVALID_HDR, snp.pageStateChange(max).result().value(), "253 entries at most");

      assertEquals(PageStateChange.PSC_ERROR_INVALID_ENTRY, snp.pageStateChange(PageStateChange.buffer(entry(0x401, OP_SHARED, true, 0))).result().value(),
          "a 2 MiB entry at an unaligned gfn");
      assertEquals(PageStateChange.PSC_ERROR_INVALID_ENTRY, snp.pageStateChange(PageStateChange.buffer(entry(0x400, OP_SHARED, false, 2))).result().value(),
          "cur_page beyond the entry");
      assertEquals(0, snp.pageStateChange(PageStateChange.buffer(entry(0x400, OP_SHARED, false, 1))).result().value(), "already done");
      expect(Errno.EINVAL, () -> snp.pageStateChange(ByteBuffer.allocate(4)));
      assertThrows(IllegalStateException.class, () -> c.complete(0));
    }
  }
}
