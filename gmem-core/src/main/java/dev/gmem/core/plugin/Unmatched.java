package dev.gmem.core.plugin;

import dev.gmem.api.PluginDescriptor.Kind;
import java.util.List;
import java.util.function.Function;

/**
 * Explains why a selection property selected nothing, naming what the user could have meant: a
 * configuration error that fails runtime creation, since the operator's explicit choice cannot be
 * honoured and a silent fallback would run something else.
 */
final class Unmatched {

  private Unmatched() {}

  /**
   * @param all       the kind's candidates
   * @param available ids that the property could have named for this role
   * @param whyUnfit  why an active provider with the right id and location still does not fit the role
   */
  static String explain(Kind kind, Selector selector, List<? extends Candidate<?>> all, List<String> available,
      Function<Candidate<?>, String> whyUnfit) {
    String noun = Messages.noun(kind);
    String tail = "; available: " + Messages.available(available);
    List<? extends Candidate<?>> sameId = all.stream().filter(c -> c.idKnown && c.id.equals(selector.id())).toList();
    if (sameId.isEmpty()) {
      return selector.text() + " names no " + noun + tail;
    }
    String subject = selector.text() + ": " + noun + " '" + selector.id() + "' ";
    List<? extends Candidate<?>> there = sameId.stream().filter(selector::matches).toList();
    if (there.isEmpty()) {
      return subject + "is at " + Messages.and(sameId.stream().map(c -> c.location).toList())
          + ", not at a location containing '" + selector.locationPart() + "'" + tail;
    }
    if (there.size() > 1) {
      return subject + "is at " + Messages.and(there.stream().map(c -> c.location).toList()) + "; select one with -D"
          + selector.key() + "=" + selector.id() + "@<part of its location>";
    }
    Candidate<?> candidate = there.get(0);
    if (candidate.active()) {
      return subject + whyUnfit.apply(candidate) + tail;
    }
    String why = candidate.message().isEmpty() ? "" : " (" + candidate.message() + ")";
    return subject + "is " + candidate.status() + why + tail;
  }
}
