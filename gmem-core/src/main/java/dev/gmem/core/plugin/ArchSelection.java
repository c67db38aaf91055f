package dev.gmem.core.plugin;

import com.google.common.collect.ArrayListMultimap;
import com.google.common.collect.ListMultimap;
import dev.gmem.api.PluginDescriptor.Kind;
import dev.gmem.api.PluginDescriptor.Status;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.core.config.GmemConfig;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * Picks one arch provider per VM type: the one {@code gmem.arch.<TYPE>} names; else, so that adding
 * a vendor jar is enough to replace a built-in, a provider from outside gmem-core's own jar; among
 * several such, the smallest id, with a warning.
 */
final class ArchSelection {

  static final String PREFIX = GmemConfig.ARCH_PREFIX;

  private ArchSelection() {}

  /**
   * @param coreLocation gmem-core's own jar: providers from there are the built-ins
   * @param problems     receives class-path problems
   * @param errors       receives configuration errors: an unknown VM type, a property naming no usable arch
   * @return the chosen provider of each type that has one
   */
  static Map<VmType, Candidate<ArchProvider>> select(List<Candidate<ArchProvider>> candidates, GmemConfig config,
      String coreLocation, List<String> problems, List<String> errors) {
    Map<VmType, Selector> selectors = selectors(config, errors);
    Duplicates.resolve(candidates, List.copyOf(selectors.values()), ArchSelection::hint, problems);
    Map<VmType, Candidate<ArchProvider>> chosen = new EnumMap<>(VmType.class);
    ListMultimap<Candidate<ArchProvider>, String> lost = ArrayListMultimap.create();
    for (VmType type : VmType.values()) {
      List<Candidate<ArchProvider>> serving =
          candidates.stream().filter(c -> c.active() && c.vmTypes.contains(type)).toList();
      Candidate<ArchProvider> winner = null;
      String how = "";
      Selector selector = selectors.get(type);
      if (selector != null) {
        List<Candidate<ArchProvider>> matches = serving.stream().filter(selector::matches).toList();
        if (matches.size() == 1) {
          winner = matches.get(0);
          how = " (" + selector.key() + ")";
        } else {
          errors.add(Unmatched.explain(Kind.ARCH, selector, candidates, serving.stream().map(c -> c.id).toList(),
              c -> "does not serve " + type));
        }
      }
      if (winner == null && !serving.isEmpty()) {
        List<Candidate<ArchProvider>> external =
            serving.stream().filter(c -> !c.location.equals(coreLocation)).toList();
        List<Candidate<ArchProvider>> pool = external.isEmpty() ? serving : external;
        winner = pool.get(0); // candidates are sorted by id
        if (pool.size() > 1) {
          problems.add("several arch providers serve " + type + ": "
              + Messages.and(pool.stream().map(c -> "'" + c.id + "' (" + c.location + ")").toList())
              + "; using '" + winner.id + "'; choose one with -D" + PREFIX + type + "=<id>");
        }
      }
      if (winner != null) {
        chosen.put(type, winner);
        for (Candidate<ArchProvider> loser : serving) {
          if (loser != winner) {
            lost.put(loser, type + " uses '" + winner.id + "'" + how);
          }
        }
      }
    }
    for (Candidate<ArchProvider> candidate : candidates) {
      if (!candidate.active()) {
        continue;
      }
      List<String> served = chosen.entrySet().stream()
          .filter(e -> e.getValue() == candidate).map(e -> e.getKey().name()).toList();
      List<String> notes = lost.get(candidate);
      if (served.isEmpty()) {
        candidate.demote(Status.NOT_SELECTED, notes.isEmpty() ? "serves no VM type" : String.join("; ", notes));
      } else {
        candidate.note("serves " + String.join(", ", served));
        notes.forEach(candidate::note);
      }
    }
    return chosen;
  }

  /** {@code gmem.arch.<TYPE>} properties by type; the type name is matched ignoring case. */
  private static Map<VmType, Selector> selectors(GmemConfig config, List<String> errors) {
    Map<VmType, Selector> selectors = new EnumMap<>(VmType.class);
    for (String key : config.keysStartingWith(PREFIX)) {
      String value = config.properties().get(key);
      String name = key.substring(PREFIX.length());
      VmType type = Arrays.stream(VmType.values())
          .filter(t -> t.name().equals(name.toUpperCase(Locale.ROOT))).findFirst().orElse(null);
      if (type == null) {
        errors.add(key + "=" + value + ": unknown VM type '" + name + "'; known: "
            + Arrays.stream(VmType.values()).map(Enum::name).collect(Collectors.joining(", ")));
      } else {
        Selector earlier = selectors.putIfAbsent(type, Selector.parse(key, value));
        if (earlier != null && !earlier.value().trim().equals(value.trim())) {
          errors.add(key + "=" + value + " contradicts " + earlier.text() + " (VM type names ignore case)");
        }
      }
    }
    return selectors;
  }

  private static String hint(List<Candidate<ArchProvider>> group) {
    return group.stream()
        .flatMap(c -> c.vmTypes.stream())
        .min(Enum::compareTo)
        .map(t -> "select one with -D" + PREFIX + t + "=" + group.get(0).id + "@<part of its location>")
        .orElse("remove all but one from the class path");
  }
}
