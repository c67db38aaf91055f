package dev.gmem.core.config;

import dev.gmem.api.GmemRuntime;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.TreeSet;

/**
 * The effective configuration of one runtime: {@code gmem.*} properties (system properties
 * overridden by builder properties) and the class loader plugins are discovered through.
 *
 * <p>The keys are a closed set: {@link #BACKEND}, {@link #ALLOCATOR}, {@link #ARCH_PREFIX}{@code <VmType>}
 * and {@link #FEATURE_PREFIX}{@code <id>}. A key outside it is an error, not ignored: a misspelt key
 * would otherwise leave the default in force without a word, just as a misspelt value would.
 *
 * @param properties  the effective properties; copied, so later changes to the source map are not seen
 * @param classLoader the loader {@link java.util.ServiceLoader} discovery uses
 */
public record GmemConfig(Map<String, String> properties, ClassLoader classLoader) {

  /** {@code kvm} or {@code memfd}; automatic when unset. */
  public static final String BACKEND = "gmem.backend";
  /** The allocator for files whose creation flags no allocator claims. */
  public static final String ALLOCATOR = "gmem.allocator";
  /** Followed by a {@link dev.gmem.api.VmType} name: the arch provider for that type. */
  public static final String ARCH_PREFIX = "gmem.arch.";
  /** Followed by a feature id: {@code false} switches the feature off. */
  public static final String FEATURE_PREFIX = "gmem.feature.";

  private static final List<String> KEYS = List.of(BACKEND, ALLOCATOR);
  private static final List<String> PREFIXES = List.of(ARCH_PREFIX, FEATURE_PREFIX);
  private static final String KNOWN =
      BACKEND + ", " + ALLOCATOR + ", " + ARCH_PREFIX + "<VmType> and " + FEATURE_PREFIX + "<id>";
  /** A key this close (in edit distance) to a known one is taken for a typo of it. */
  private static final int TYPO_DISTANCE = 2;

  public GmemConfig {
    properties = Map.copyOf(properties);
    Objects.requireNonNull(classLoader, "classLoader");
  }

  /** The configuration a {@link GmemRuntime.Builder} describes. */
  public static GmemConfig from(GmemRuntime.Builder builder) {
    return new GmemConfig(builder.properties(), builder.classLoader());
  }

  /** The property's value, if set. */
  public Optional<String> get(String key) {
    return Optional.ofNullable(properties.get(key));
  }

  /**
   * A boolean property: {@code true} or {@code false} (any case, surrounding blanks ignored), or
   * {@code dflt} when unset.
   *
   * @throws IllegalArgumentException when the value is neither; a typo must not silently flip a
   *     switch, so the caller decides how to report it
   */
  public boolean flag(String key, boolean dflt) {
    String value = properties.get(key);
    if (value == null) {
      return dflt;
    }
    switch (value.trim().toLowerCase(Locale.ROOT)) {
      case "true":
        return true;
      case "false":
        return false;
      default:
        throw new IllegalArgumentException(key + "=" + value + " must be true or false");
    }
  }

  /** The keys that start with {@code prefix}, sorted. */
  public TreeSet<String> keysStartingWith(String prefix) {
    TreeSet<String> keys = new TreeSet<>();
    properties.keySet().stream().filter(k -> k.startsWith(prefix)).forEach(keys::add);
    return keys;
  }

  /**
   * One line per key gmem does not read, sorted, naming the known key it was probably meant to be
   * and the keys that exist; empty when every key is known.
   */
  public List<String> unknownKeys() {
    List<String> lines = new ArrayList<>();
    for (String key : new TreeSet<>(properties.keySet())) {
      if (KEYS.contains(key) || PREFIXES.stream().anyMatch(key::startsWith)) {
        continue;
      }
      String guess = guess(key).map(k -> " (did you mean " + k + "?)").orElse("");
      lines.add(key + "=" + properties.get(key) + " is no gmem property" + guess + "; known: " + KNOWN);
    }
    return lines;
  }

  /** The known key closest to {@code key}, if it is within a typo of it. */
  private static Optional<String> guess(String key) {
    String best = null;
    int bestDistance = TYPO_DISTANCE + 1;
    for (String known : KEYS) {
      int d = distance(key, known);
      if (d < bestDistance) {
        best = known;
        bestDistance = d;
      }
    }
    // gmem.archs.SNP: compare what stands before the last dot with the prefix, keep the rest.
    int dot = key.lastIndexOf('.');
    if (dot > 0) {
      String head = key.substring(0, dot + 1);
      for (String prefix : PREFIXES) {
        int d = distance(head, prefix);
        if (d < bestDistance) {
          best = prefix + key.substring(dot + 1);
          bestDistance = d;
        }
      }
    }
    return Optional.ofNullable(best);
  }

  /** Levenshtein distance. */
  private static int distance(String a, String b) {
    int[] row = new int[b.length() + 1];
    for (int j = 0; j <= b.length(); j++) {
      row[j] = j;
    }
    for (int i = 1; i <= a.length(); i++) {
      int diagonal = row[0];
      row[0] = i;
      for (int j = 1; j <= b.length(); j++) {
        int above = row[j];
        row[j] = Math.min(Math.min(row[j] + 1, row[j - 1] + 1), diagonal + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1));
        diagonal = above;
      }
    }
    return row[b.length()];
  }
}
