package dev.gmem.arch.snp;

import dev.gmem.api.Api;
import dev.gmem.api.GmemException;
import dev.gmem.api.GuestCall;
import dev.gmem.api.VcpuExit;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The guest's Page State Change requests as KVM handles them for SNP ({@code arch/x86/kvm/svm/sev.c}:
 * {@code snp_begin_psc_msr}, {@code snp_begin_psc}, {@code snp_complete_one_psc}): each contiguous
 * run of like entries becomes one {@code KVM_HC_MAP_GPA_RANGE} exit the VMM completes, and a
 * non-zero answer ends the request with a generic PSC error.
 *
 * <p>Two protocols (GHCB specification): the GHCB MSR protocol, one 4 KiB page per request
 * ({@link #GHCB_MSR_PSC_REQ}: GFN in bits 51:12, operation in 55:52; response
 * {@link #GHCB_MSR_PSC_RESP}, or {@link #GHCB_MSR_PSC_RESP_ERROR}); and the PSC buffer of the
 * {@code SVM_VMGEXIT_PSC} NAE event: an 8-byte header (u16 cur_entry, u16 end_entry, u32
 * reserved) and up to 253 8-byte entries (cur_page 11:0, gfn 51:12, operation 55:52, page size
 * bit 56: 2 MiB), which KVM advances in place (cur_entry, cur_page) so that an interrupted request
 * resumes; the outcome is {@code sw_exit_info_2}: 0, or one of the {@code VMGEXIT_PSC_ERROR_*}.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class PageStateChange {
  public static final long GHCB_MSR_PSC_REQ = 0x014;
  public static final long GHCB_MSR_PSC_RESP = 0x015;
  /** KVM's generic MSR-protocol PSC error: bit 63 set on the response code. */
  public static final long GHCB_MSR_PSC_RESP_ERROR = (1L << 63) | GHCB_MSR_PSC_RESP;
  public static final int OP_PRIVATE = 1;
  public static final int OP_SHARED = 2;
  /** PSMASH and UNSMASH requests, which KVM completes without an exit. */
  public static final int OP_PSMASH = 3;
  public static final int OP_UNSMASH = 4;
  public static final int MAX_ENTRIES = 253;
  public static final long PSC_ERROR_GENERIC = 0x100L << 32;
  public static final long PSC_ERROR_INVALID_HDR = (1L << 32) | 1;
  public static final long PSC_ERROR_INVALID_ENTRY = (1L << 32) | 2;

  private PageStateChange() {}

  /** The GHCB MSR value of a one-page request. */
  public static long msrRequest(long gfn, int op) {
    return GHCB_MSR_PSC_REQ | (gfn & ((1L << 40) - 1)) << 12 | (long) (op & 0xf) << 52;
  }

  /** A PSC buffer entry. */
  public static long entry(long gfn, int op, boolean huge, int curPage) {
    return (curPage & 0xfffL) | (gfn & ((1L << 40) - 1)) << 12 | (long) (op & 0xf) << 52 | (huge ? 1L << 56 : 0);
  }

  /** A PSC buffer (header and entries) as the guest writes it into the GHCB's shared buffer. */
  public static ByteBuffer buffer(long... entries) {
    ByteBuffer b = ByteBuffer.allocate(8 + 8 * Math.max(entries.length, 1)).order(ByteOrder.LITTLE_ENDIAN);
    b.putShort(0, (short) 0).putShort(2, (short) (entries.length - 1));
    for (int i = 0; i < entries.length; i++) {
      b.putLong(8 + 8 * i, entries[i]);
    }
    return b;
  }

  /** The MSR protocol's request: one exit for a known operation, else the error response at once. */
  static GuestCall msr(long msr) {
    long gfn = (msr >>> 12) & ((1L << 40) - 1);
    int op = (int) ((msr >>> 52) & 0xf);
    if ((msr & 0xfff) != GHCB_MSR_PSC_REQ || (op != OP_PRIVATE && op != OP_SHARED)) {
      return GuestCall.finished(new GuestCall.Result(GHCB_MSR_PSC_RESP_ERROR));
    }
    long attrs = op == OP_PRIVATE ? VcpuExit.Hypercall.ENCRYPTED : VcpuExit.Hypercall.DECRYPTED;
    VcpuExit.Hypercall exit = VcpuExit.Hypercall.mapGpaRange(gfn << 12, 1, attrs);
    return new GuestCall() {
      private GuestCall.Result result;

      @Override
      public VcpuExit.Hypercall pendingExit() {
        return result == null ? exit : null;
      }

      @Override
      public void complete(long ret) {
        if (result != null) {
          throw new IllegalStateException("no hypercall exit is pending");
        }
        result = new GuestCall.Result(ret == 0 ? GHCB_MSR_PSC_RESP : GHCB_MSR_PSC_RESP_ERROR);
      }

      @Override
      public GuestCall.Result result() {
        if (result == null) {
          throw new IllegalStateException("the VMM has not completed " + exit);
        }
        return result;
      }
    };
  }

  /** The PSC buffer request over {@code buffer} (little-endian view from position 0), advanced in place. */
  static GuestCall buffer(ByteBuffer buffer) {
    if (buffer.capacity() < 8 || buffer.isReadOnly()) {
      throw GmemException.einval("a PSC buffer is a writable buffer of at least its 8-byte header");
    }
    return new BufferCall(buffer.duplicate().order(ByteOrder.LITTLE_ENDIAN));
  }

  /** {@code snp_begin_psc} / {@code snp_complete_one_psc} over one buffer. */
  private static final class BufferCall implements GuestCall {
    private final ByteBuffer b;
    private final int maxEntries;
    private VcpuExit.Hypercall pending;
    private GuestCall.Result result;
    private int inflightIdx;
    private int inflight;

    BufferCall(ByteBuffer b) {
      this.b = b;
      this.maxEntries = Math.min(MAX_ENTRIES, (b.capacity() - 8) / 8);
      begin();
    }

    private int curEntry() {
      return Short.toUnsignedInt(b.getShort(0));
    }

    private long entryAt(int idx) {
      return b.getLong(8 + 8 * idx);
    }

    private void finish(long value) {
      pending = null;
      inflight = 0;
      result = new GuestCall.Result(value);
    }

    private void begin() {
      while (true) {
        int idxStart = curEntry();
        int idxEnd = Short.toUnsignedInt(b.getShort(2));
        if (idxEnd >= maxEntries) {
          finish(PSC_ERROR_INVALID_HDR);
          return;
        }
        int idx = idxStart;
        long start = 0;
        long gfn = 0;
        long npages = 0;
        boolean huge = false;
        for (; idx <= idxEnd; idx++, b.putShort(0, (short) (curEntry() + 1))) {
          start = entryAt(idx);
          gfn = (start >>> 12) & ((1L << 40) - 1);
          huge = (start & (1L << 56)) != 0;
          npages = huge ? 512 : 1;
          long curPage = start & 0xfff;
          if (curPage > npages || (gfn & (npages - 1)) != 0) {
            finish(PSC_ERROR_INVALID_ENTRY);
            return;
          }
          if (curPage != 0) {
            // A partly done 2 MiB entry continues at 4 KiB: it is effectively split already.
            npages -= curPage;
            gfn += curPage;
            huge = false;
          }
          if (npages != 0) {
            break;
          }
        }
        if (idx > idxEnd) {
          finish(0);
          return;
        }
        int op = (int) ((start >>> 52) & 0xf);
        inflightIdx = idx;
        inflight = 1;
        while (++idx <= idxEnd) {
          long e = entryAt(idx);
          if ((int) ((e >>> 52) & 0xf) != op || ((e >>> 12) & ((1L << 40) - 1)) != gfn + npages
              || (e & 0xfff) != 0 || ((e & (1L << 56)) != 0) != huge) {
            break;
          }
          inflight++;
          npages += huge ? 512 : 1;
        }
        if (op == OP_PRIVATE || op == OP_SHARED) {
          long attrs = (op == OP_PRIVATE ? VcpuExit.Hypercall.ENCRYPTED : VcpuExit.Hypercall.DECRYPTED)
              | ((start & (1L << 56)) != 0 ? VcpuExit.Hypercall.PAGE_SZ_2M : 0);
          pending = VcpuExit.Hypercall.mapGpaRange(gfn << 12, npages, attrs);
          return;
        }
        completeInflight(); // PSMASH/UNSMASH and unknown operations: done without an exit
      }
    }

    /** {@code __snp_complete_one_psc}: the in-flight entries are done. */
    private void completeInflight() {
      int idx = inflightIdx;
      for (; inflight > 0; inflight--, idx++) {
        long e = entryAt(idx);
        long done = (e & (1L << 56)) != 0 ? 512 : 1;
        b.putLong(8 + 8 * idx, (e & ~0xfffL) | done);
      }
      b.putShort(0, (short) idx);
    }

    @Override
    public VcpuExit.Hypercall pendingExit() {
      return pending;
    }

    @Override
    public void complete(long ret) {
      if (pending == null) {
        throw new IllegalStateException("no hypercall exit is pending");
      }
      pending = null;
      if (ret != 0) {
        finish(PSC_ERROR_GENERIC);
        return;
      }
      completeInflight();
      begin();
    }

    @Override
    public GuestCall.Result result() {
      if (result == null) {
        throw new IllegalStateException("the VMM has not completed " + pending);
      }
      return result;
    }
  }
}
