package dev.gmem.arch.tdx.module;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** The PSI line the engine's use is decided by. */
class CpuPressureTest {
  @Test
  void readsSomeAvg10() {
    assertEquals(39.19, CpuPressure.someAvg10("some avg10=39.19 avg60=60.86 avg300=76.33 total=23850348598"), 1e-9);
    assertEquals(0.0, CpuPressure.someAvg10("some avg10=0.00 avg60=0.00 avg300=0.00 total=0"), 1e-9);
  }

  @Test
  void aLineWithoutAvg10IsRefused() {
    assertThrows(IllegalArgumentException.class, () -> CpuPressure.someAvg10("full total=0"));
  }
}
