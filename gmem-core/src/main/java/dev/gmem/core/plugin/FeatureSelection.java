package dev.gmem.core.plugin;

import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.core.config.GmemConfig;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A feature is on when its jar is present and its probe succeeds, unless
 * {@code gmem.feature.<id>=false}. No property chooses between two jars of the same feature id:
 * the fix is to remove one.
 */
final class FeatureSelection {

  static final String PREFIX = GmemConfig.FEATURE_PREFIX;

  private FeatureSelection() {}

  /**
   * Feature id → the property that disables it. Read before inspection: disabled features are not
   * probed. A value other than true or false goes to {@code errors}.
   */
  static Map<String, String> disabled(GmemConfig config, List<String> errors) {
    Map<String, String> disabled = new LinkedHashMap<>();
    for (String key : config.keysStartingWith(PREFIX)) {
      String id = key.substring(PREFIX.length());
      try {
        if (!config.flag(key, true)) {
          disabled.put(id, key + "=" + config.properties().get(key));
        }
      } catch (IllegalArgumentException e) {
        errors.add(e.getMessage());
      }
    }
    return disabled;
  }

  /**
   * Resolves duplicates ({@code problems}) and reports switches for features that were not found
   * ({@code errors}: a misspelt id would leave the feature meant on).
   */
  static void select(List<Candidate<FeatureProvider>> candidates, GmemConfig config, List<String> problems,
      List<String> errors) {
    Duplicates.resolve(candidates, List.of(), group -> "remove all but one from the class path", problems);
    List<String> known = candidates.stream().filter(c -> c.idKnown).map(c -> c.id).distinct().toList();
    for (String key : config.keysStartingWith(PREFIX)) {
      if (!known.contains(key.substring(PREFIX.length()))) {
        errors.add(key + "=" + config.properties().get(key) + " names no feature; available: "
            + Messages.available(known));
      }
    }
  }
}
