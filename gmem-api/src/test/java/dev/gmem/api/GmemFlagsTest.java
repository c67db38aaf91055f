package dev.gmem.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class GmemFlagsTest {

  @Test
  void baseFlagsAndUnknownBits() {
    assertEquals("0", GmemFlags.describe(0));
    assertEquals("MMAP|INIT_SHARED", GmemFlags.describe(GmemFlags.BASE));
    assertEquals("MMAP|NO_DIRECT_MAP|0x30", GmemFlags.describe(GmemFlags.MMAP | GmemFlags.NO_DIRECT_MAP | 0x30));
  }

  @Test
  void aRequestedHugePageSizeReadsAsThatSize() {
    assertEquals("MMAP|HUGE_2MB", GmemFlags.describe(GmemFlags.MMAP | GmemFlags.hugePageSize(21)));
    assertEquals("HUGE_1GB", GmemFlags.describe(GmemFlags.hugePageSize(30)));
    assertEquals("HUGE_4KB", GmemFlags.describe(GmemFlags.hugePageSize(12)));
    assertEquals("HUGE_64KB", GmemFlags.describe(GmemFlags.hugePageSize(16)));
    assertEquals("HUGE_2B", GmemFlags.describe(GmemFlags.hugePageSize(1)));
    assertEquals("HUGE_4EB", GmemFlags.describe(GmemFlags.hugePageSize(62)));
  }

  /** A VM's accepted flags carry the whole field when an allocator claims huge pages; gmem demo printed it as a size. */
  @Test
  void theWholeFieldAsInASetOfAcceptedFlagsReadsAsTheField() {
    assertEquals("MMAP|INIT_SHARED|HUGE_PAGE_SIZE", GmemFlags.describe(GmemFlags.BASE | GmemFlags.HUGE_PAGE_MASK));
  }

  @Test
  void noFieldValueReadsAsANegativeOrZeroSize() {
    for (int log2 = 1; log2 <= 0x3f; log2++) {
      String text = GmemFlags.describe(GmemFlags.hugePageSize(log2));
      assertTrue(text.matches("HUGE_([1-9][0-9]*[KMGTPE]?B|PAGE_SIZE)"), log2 + " -> " + text);
    }
  }
}
