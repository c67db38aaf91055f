package dev.gmem.core.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.gmem.api.Errno;
import dev.gmem.api.GmemException;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.VmType;
import dev.gmem.core.conformance.OpenFds;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A misspelt property fails runtime creation with EINVAL, naming what exists, instead of leaving a
 * default in force. On gmem-core's own class path the plugins are the built-ins: allocator
 * {@code page} and arch {@code default} (DEFAULT, SW_PROTECTED); no feature.
 */
class ConfigErrorsTest {

  private static final String KNOWN = "; known: gmem.backend, gmem.allocator, gmem.arch.<VmType> and gmem.feature.<id>";

  @ParameterizedTest
  @CsvSource(delimiter = '|', quoteCharacter = '"', value = {
      "gmem.alocator   | page      | gmem.alocator=page is no gmem property (did you mean gmem.allocator?)" + KNOWN,
      "gmem.backend    | kvmm      | gmem.backend=kvmm names no backend; available: kvm, memfd",
      "gmem.allocator  | hugetlb   | gmem.allocator=hugetlb names no allocator; available: page",
      "gmem.arch.SNP   | default   | gmem.arch.SNP=default: arch 'default' does not serve SNP; available: none",
      "gmem.arch.SEV   | default   | gmem.arch.SEV=default: unknown VM type 'SEV'; known: DEFAULT, SW_PROTECTED, SNP, TDX, PKVM",
      "gmem.arch.DEFAULT | defualt | gmem.arch.DEFAULT=defualt names no arch; available: default",
      "gmem.feature.userfault | false | gmem.feature.userfault=false names no feature; available: none",
  })
  void oneTypoFailsCreationNamingWhatExists(String key, String value, String message) {
    GmemException e = assertThrows(GmemException.class, () -> open(Map.of(key, value)));

    assertEquals(Errno.EINVAL, e.errno());
    assertEquals("EINVAL: invalid gmem configuration: " + message, e.getMessage());
  }

  @Test
  void everyTypoIsNamedAtOnceSortedByProperty() {
    GmemException e = assertThrows(GmemException.class, () -> open(Map.of(
        "gmem.feature.direct-map", "off", "gmem.backend", "kvmm", "gmem.alocator", "page", "gmem.arch.SNP", "x")));

    assertEquals("EINVAL: invalid gmem configuration (5 problems):\n"
        + "  gmem.alocator=page is no gmem property (did you mean gmem.allocator?)" + KNOWN + "\n"
        + "  gmem.arch.SNP=x names no arch; available: none\n"
        + "  gmem.backend=kvmm names no backend; available: kvm, memfd\n"
        + "  gmem.feature.direct-map=off must be true or false\n"
        + "  gmem.feature.direct-map=off names no feature; available: none",
        e.getMessage());
  }

  @Test
  void theSameSettingsSpelledRightWork() {
    try (GmemRuntime rt = open(Map.of("gmem.backend", "memfd", "gmem.allocator", "page",
        "gmem.arch.DEFAULT", "default", "gmem.arch.sw_protected", "default"))) {
      rt.createVm(VmType.SW_PROTECTED).close();
      assertEquals("memfd", rt.backend().name());
    }
  }

  @Test
  void aFailedCreationLeavesNoFileDescriptorBehind() {
    assertThrows(GmemException.class, () -> open(Map.of("gmem.allocator", "x"))); // warm-up: classes, libc binding
    java.util.Set<String> before = OpenFds.now();
    for (int i = 0; i < 20; i++) {
      assertThrows(GmemException.class, () -> open(Map.of("gmem.backend", "kvm", "gmem.allocator", "x")));
    }

    // as sets: an fd something else closed meanwhile once made a count of 60 where 61 was expected
    assertEquals(java.util.Set.of(), OpenFds.openedSince(before), "fds a failed creation left open");
  }

  private static GmemRuntime open(Map<String, String> properties) {
    GmemRuntime.Builder b = GmemRuntime.builder();
    // System properties (e.g. -Dgmem.backend=memfd for the whole suite) must not add or hide errors.
    b.properties().keySet().forEach(k -> b.property(k, null));
    properties.forEach(b::property);
    return b.build();
  }

}
