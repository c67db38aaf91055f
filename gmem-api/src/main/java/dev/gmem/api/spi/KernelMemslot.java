package dev.gmem.api.spi;

import dev.gmem.api.Api;

/**
 * What the running kernel itself is given for a memslot on behalf of a feature whose memslot flag
 * the kernel implements (a pass-through, see {@link Feature#kernelMemslot}): the flag bits among
 * the slot's flags to pass in {@code kvm_userspace_memory_region2.flags}, and the
 * {@code userfault_bitmap} field KVM Userfault's flag needs (the user address of the bitmap's
 * words; 0 for none).
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public record KernelMemslot(int flags, long userfaultBitmap) {}
