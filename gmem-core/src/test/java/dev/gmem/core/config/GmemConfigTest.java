package dev.gmem.core.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gmem.api.GmemRuntime;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class GmemConfigTest {

  private final ClassLoader loader = getClass().getClassLoader();

  @Test
  void getReturnsTheValueOrNothing() {
    GmemConfig config = new GmemConfig(Map.of("gmem.allocator", "hugetlb"), loader);

    assertEquals(Optional.of("hugetlb"), config.get("gmem.allocator"));
    assertEquals(Optional.empty(), config.get("gmem.backend"));
  }

  @Test
  void flagAcceptsTrueAndFalseInAnyCaseAndDefaultsWhenUnset() {
    GmemConfig config = new GmemConfig(Map.of("a", "false", "b", " TRUE ", "c", "False"), loader);

    assertFalse(config.flag("a", true));
    assertTrue(config.flag("b", false));
    assertFalse(config.flag("c", true));
    assertTrue(config.flag("unset", true));
    assertFalse(config.flag("unset", false));
  }

  @Test
  void flagRefusesOtherValues() {
    GmemConfig config = new GmemConfig(Map.of("gmem.feature.userfault", "off"), loader);

    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> config.flag("gmem.feature.userfault", true));
    assertEquals("gmem.feature.userfault=off must be true or false", e.getMessage());
  }

  @Test
  void everyKnownKeyIsKnown() {
    GmemConfig config = new GmemConfig(Map.of("gmem.backend", "kvm", "gmem.allocator", "page",
        "gmem.arch.SNP", "x", "gmem.arch.nosuchtype", "y", "gmem.feature.anything", "false"), loader);

    // Values and VM types are checked where they are used; only the key's shape is checked here.
    assertEquals(List.of(), config.unknownKeys());
  }

  @Test
  void unknownKeysNameTheKeyMeantAndTheKeysThatExist() {
    GmemConfig config = new GmemConfig(Map.of("gmem.alocator", "hugetlb", "gmem.backnd", "memfd",
        "gmem.archs.SNP", "snp", "gmem.features.userfault", "false", "gmem.verbose", "true"), loader);

    String known = "; known: gmem.backend, gmem.allocator, gmem.arch.<VmType> and gmem.feature.<id>";
    assertEquals(List.of(
        "gmem.alocator=hugetlb is no gmem property (did you mean gmem.allocator?)" + known,
        "gmem.archs.SNP=snp is no gmem property (did you mean gmem.arch.SNP?)" + known,
        "gmem.backnd=memfd is no gmem property (did you mean gmem.backend?)" + known,
        "gmem.features.userfault=false is no gmem property (did you mean gmem.feature.userfault?)" + known,
        "gmem.verbose=true is no gmem property" + known),
        config.unknownKeys());
  }

  @Test
  void propertiesAreCopiedAndImmutable() {
    Map<String, String> source = new HashMap<>(Map.of("gmem.backend", "memfd"));
    GmemConfig config = new GmemConfig(source, loader);
    source.put("gmem.backend", "kvm");

    assertEquals(Optional.of("memfd"), config.get("gmem.backend"));
    assertThrows(UnsupportedOperationException.class, () -> config.properties().put("x", "y"));
  }

  @Test
  void classLoaderIsRequired() {
    NullPointerException e = assertThrows(NullPointerException.class, () -> new GmemConfig(Map.of(), null));
    assertEquals("classLoader", e.getMessage());
  }

  @Test
  void fromBuilderTakesItsPropertiesAndLoader() throws Exception {
    try (URLClassLoader custom = new URLClassLoader(new URL[0], loader)) {
      GmemConfig config = GmemConfig.from(
          GmemRuntime.builder().property("gmem.allocator", "hugetlb").classLoader(custom));

      assertEquals(Optional.of("hugetlb"), config.get("gmem.allocator"));
      assertSame(custom, config.classLoader());
    }
  }
}
