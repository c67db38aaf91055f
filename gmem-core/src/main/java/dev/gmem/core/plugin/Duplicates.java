package dev.gmem.core.plugin;

import com.google.common.collect.ListMultimap;
import com.google.common.collect.Multimaps;
import dev.gmem.api.PluginDescriptor.Status;
import dev.gmem.api.spi.GmemProvider;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Function;

/**
 * Two jars declaring the same id within one kind are a class-path error: nothing says which one
 * the operator meant. Unless a selection property picks exactly one of them by location, none of
 * them is used.
 */
final class Duplicates {

  private Duplicates() {}

  /**
   * Demotes every duplicate that was not picked and reports unresolved groups.
   *
   * @param candidates one kind's candidates, in {@link Candidate#ORDER}
   * @param selectors  the kind's selection properties
   * @param hint       how to fix a group, e.g. {@code select one with -Dgmem.allocator=...}
   * @param problems   receives one line per unresolved group
   * @return the ids left unresolved, whose selection properties need no further complaint
   */
  static <P extends GmemProvider> Set<String> resolve(List<Candidate<P>> candidates, List<Selector> selectors,
      Function<List<Candidate<P>>, String> hint, List<String> problems) {
    ListMultimap<String, Candidate<P>> byId = Multimaps.index(candidates.stream().filter(c -> c.idKnown).iterator(), c -> c.id);
    Set<String> unresolved = new LinkedHashSet<>();
    for (List<Candidate<P>> group : Multimaps.asMap(byId).values()) {
      if (group.size() < 2 || group.stream().allMatch(c -> c.status() == Status.DISABLED)) {
        continue;
      }
      List<Candidate<P>> picked = group.stream().filter(c -> selectors.stream().anyMatch(s -> s.matches(c))).toList();
      String what = "duplicate " + Messages.noun(group.get(0).kind) + " id '" + group.get(0).id + "'";
      if (picked.size() == 1) {
        Candidate<P> chosen = picked.get(0);
        Selector by = selectors.stream().filter(s -> s.matches(chosen)).findFirst().orElseThrow();
        for (Candidate<P> other : group) {
          if (other != chosen && other.active()) {
            other.demote(Status.NOT_SELECTED, what + ": " + by.text() + " chose " + chosen.location);
          }
        }
        continue;
      }
      unresolved.add(group.get(0).id);
      problems.add(what + ": " + Messages.and(group.stream().map(c -> c.location).toList()) + "; " + hint.apply(group));
      for (Candidate<P> member : group) {
        if (member.active()) {
          List<String> others = group.stream().filter(c -> c != member).map(c -> c.location).toList();
          member.demote(Status.NOT_SELECTED, what + " also at " + Messages.and(others) + "; none selected");
        }
      }
    }
    return unresolved;
  }
}
