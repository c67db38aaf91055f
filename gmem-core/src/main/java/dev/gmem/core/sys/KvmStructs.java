package dev.gmem.core.sys;

import jnr.ffi.Pointer;
import jnr.ffi.Runtime;
import jnr.ffi.Struct;

/**
 * KVM uAPI structs ({@code include/uapi/linux/kvm.h}, x86_64). The host's C headers predate
 * guest_memfd, so layouts live here; tests assert each size against its ioctl number.
 */
public final class KvmStructs {
  private KvmStructs() {}

  /** Allocates zeroed native memory for {@code s} and returns the pointer to pass to ioctl. */
  public static <T extends Struct> T allocate(Sys sys, T s) {
    s.useMemory(sys.allocate(Struct.size(s)));
    return s;
  }

  public static Pointer memory(Struct s) {
    return Struct.getMemory(s);
  }

  /** {@code struct kvm_create_guest_memfd}: 64 bytes. */
  public static final class CreateGuestMemfd extends Struct {
    public final Unsigned64 size = new Unsigned64();
    public final Unsigned64 flags = new Unsigned64();
    public final Unsigned64[] reserved = array(new Unsigned64[6]);

    public CreateGuestMemfd(Runtime runtime) {
      super(runtime);
    }
  }

  /**
   * {@code struct kvm_link_guest_memfd} of the {@code KVM_LINK_GUEST_MEMFD} RFC (v2, 2025): 64
   * bytes. Not in any released kernel's headers.
   */
  public static final class LinkGuestMemfd extends Struct {
    public final Unsigned64 fd = new Unsigned64();
    public final Unsigned64 flags = new Unsigned64();
    public final Unsigned64[] reserved = array(new Unsigned64[6]);

    public LinkGuestMemfd(Runtime runtime) {
      super(runtime);
    }
  }

  /** {@code struct kvm_userspace_memory_region2}: 160 bytes. */
  public static final class UserspaceMemoryRegion2 extends Struct {
    public final Unsigned32 slot = new Unsigned32();
    public final Unsigned32 flags = new Unsigned32();
    public final Unsigned64 guestPhysAddr = new Unsigned64();
    public final Unsigned64 memorySize = new Unsigned64();
    public final Unsigned64 userspaceAddr = new Unsigned64();
    public final Unsigned64 guestMemfdOffset = new Unsigned64();
    public final Unsigned32 guestMemfd = new Unsigned32();
    public final Unsigned32 pad1 = new Unsigned32();
    public final Unsigned64[] pad2 = array(new Unsigned64[14]);

    public UserspaceMemoryRegion2(Runtime runtime) {
      super(runtime);
    }
  }

  /** {@code struct kvm_memory_attributes}: 32 bytes (VM ioctl; ENOTTY on hosts without attributes). */
  public static final class MemoryAttributes extends Struct {
    public final Unsigned64 address = new Unsigned64();
    public final Unsigned64 size = new Unsigned64();
    public final Unsigned64 attributes = new Unsigned64();
    public final Unsigned64 flags = new Unsigned64();

    public MemoryAttributes(Runtime runtime) {
      super(runtime);
    }
  }

  /** {@code struct kvm_memory_attributes2} (in-place conversion series v7/v8): 128 bytes, issued on the gmem fd. */
  public static final class MemoryAttributes2 extends Struct {
    public final Unsigned64 offset = new Unsigned64();
    public final Unsigned64 size = new Unsigned64();
    public final Unsigned64 attributes = new Unsigned64();
    public final Unsigned64 flags = new Unsigned64();
    public final Unsigned64 errorOffset = new Unsigned64();
    public final Unsigned64[] reserved = array(new Unsigned64[11]);

    public MemoryAttributes2(Runtime runtime) {
      super(runtime);
    }
  }

  /** {@code struct kvm_enable_cap}: 104 bytes. */
  public static final class EnableCap extends Struct {
    public final Unsigned32 cap = new Unsigned32();
    public final Unsigned32 flags = new Unsigned32();
    public final Unsigned64[] args = array(new Unsigned64[4]);
    public final Unsigned8[] pad = array(new Unsigned8[64]);

    public EnableCap(Runtime runtime) {
      super(runtime);
    }
  }

  /** {@code struct kvm_regs}: 144 bytes. */
  public static final class Regs extends Struct {
    public final Unsigned64 rax = new Unsigned64();
    public final Unsigned64 rbx = new Unsigned64();
    public final Unsigned64 rcx = new Unsigned64();
    public final Unsigned64 rdx = new Unsigned64();
    public final Unsigned64 rsi = new Unsigned64();
    public final Unsigned64 rdi = new Unsigned64();
    public final Unsigned64 rsp = new Unsigned64();
    public final Unsigned64 rbp = new Unsigned64();
    public final Unsigned64 r8 = new Unsigned64();
    public final Unsigned64 r9 = new Unsigned64();
    public final Unsigned64 r10 = new Unsigned64();
    public final Unsigned64 r11 = new Unsigned64();
    public final Unsigned64 r12 = new Unsigned64();
    public final Unsigned64 r13 = new Unsigned64();
    public final Unsigned64 r14 = new Unsigned64();
    public final Unsigned64 r15 = new Unsigned64();
    public final Unsigned64 rip = new Unsigned64();
    public final Unsigned64 rflags = new Unsigned64();

    public Regs(Runtime runtime) {
      super(runtime);
    }
  }

  /** {@code struct kvm_segment}: 24 bytes. */
  public static final class Segment extends Struct {
    public final Unsigned64 base = new Unsigned64();
    public final Unsigned32 limit = new Unsigned32();
    public final Unsigned16 selector = new Unsigned16();
    public final Unsigned8 type = new Unsigned8();
    public final Unsigned8 present = new Unsigned8();
    public final Unsigned8 dpl = new Unsigned8();
    public final Unsigned8 db = new Unsigned8();
    public final Unsigned8 s = new Unsigned8();
    public final Unsigned8 l = new Unsigned8();
    public final Unsigned8 g = new Unsigned8();
    public final Unsigned8 avl = new Unsigned8();
    public final Unsigned8 unusable = new Unsigned8();
    public final Unsigned8 padding = new Unsigned8();

    public Segment(Runtime runtime) {
      super(runtime);
    }
  }

  /** {@code struct kvm_dtable}: 16 bytes. */
  public static final class Dtable extends Struct {
    public final Unsigned64 base = new Unsigned64();
    public final Unsigned16 limit = new Unsigned16();
    public final Unsigned16[] padding = array(new Unsigned16[3]);

    public Dtable(Runtime runtime) {
      super(runtime);
    }
  }

  /** {@code struct kvm_sregs}: 312 bytes. */
  public static final class Sregs extends Struct {
    public final Segment cs = inner(new Segment(getRuntime()));
    public final Segment ds = inner(new Segment(getRuntime()));
    public final Segment es = inner(new Segment(getRuntime()));
    public final Segment fs = inner(new Segment(getRuntime()));
    public final Segment gs = inner(new Segment(getRuntime()));
    public final Segment ss = inner(new Segment(getRuntime()));
    public final Segment tr = inner(new Segment(getRuntime()));
    public final Segment ldt = inner(new Segment(getRuntime()));
    public final Dtable gdt = inner(new Dtable(getRuntime()));
    public final Dtable idt = inner(new Dtable(getRuntime()));
    public final Unsigned64 cr0 = new Unsigned64();
    public final Unsigned64 cr2 = new Unsigned64();
    public final Unsigned64 cr3 = new Unsigned64();
    public final Unsigned64 cr4 = new Unsigned64();
    public final Unsigned64 cr8 = new Unsigned64();
    public final Unsigned64 efer = new Unsigned64();
    public final Unsigned64 apicBase = new Unsigned64();
    public final Unsigned64[] interruptBitmap = array(new Unsigned64[4]);

    public Sregs(Runtime runtime) {
      super(runtime);
    }
  }
}
