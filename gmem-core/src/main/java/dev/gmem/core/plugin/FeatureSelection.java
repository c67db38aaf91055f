package dev.gmem.core.plugin;

import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.core.config.GmemConfig;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * A feature is on when its jar is present and its probe succeeds, unless
 * {@code gmem.feature.<id>=false}. No property chooses between two jars of the same feature id:
 * the fix is to remove one.
 */
final class FeatureSelection {

  static final String PREFIX = "gmem.feature.";

  private FeatureSelection() {}

  /** Feature id → the property that disables it. Read before inspection: disabled features are not probed. */
  static Map<String, String> disabled(GmemConfig config, List<String> problems) {
    Map<String, String> disabled = new LinkedHashMap<>();
    for (String key : switches(config)) {
      String id = key.substring(PREFIX.length());
      try {
        if (!config.flag(key, true)) {
          disabled.put(id, key + "=" + config.properties().get(key));
        }
      } catch (IllegalArgumentException e) {
        problems.add(e.getMessage() + "; feature '" + id + "' stays on");
      }
    }
    return disabled;
  }

  /** Resolves duplicates and reports switches for features that were not found. */
  static void select(List<Candidate<FeatureProvider>> candidates, GmemConfig config, List<String> problems) {
    Duplicates.resolve(candidates, List.of(), group -> "remove all but one from the class path", problems);
    List<String> known = candidates.stream().filter(c -> c.idKnown).map(c -> c.id).distinct().toList();
    for (String key : switches(config)) {
      if (!known.contains(key.substring(PREFIX.length()))) {
        problems.add(key + "=" + config.properties().get(key) + " names no feature; available: "
            + Messages.available(known));
      }
    }
  }

  private static TreeSet<String> switches(GmemConfig config) {
    TreeSet<String> keys = new TreeSet<>();
    config.properties().keySet().stream().filter(k -> k.startsWith(PREFIX)).forEach(keys::add);
    return keys;
  }
}
