package dev.gmem.api;

/**
 * A descriptor-table register, GDTR or IDTR ({@code struct kvm_dtable}).
 *
 * @param base  linear base address
 * @param limit table limit in bytes, an unsigned 16-bit value
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public record DescriptorTable(long base, int limit) {
  public DescriptorTable {
    if (limit < 0 || limit > 0xffff) {
      throw new IllegalArgumentException("limit is a u16: 0x" + Integer.toHexString(limit));
    }
  }

  @Override
  public String toString() {
    return String.format("DescriptorTable[base=0x%x limit=0x%x]", base, limit);
  }
}
