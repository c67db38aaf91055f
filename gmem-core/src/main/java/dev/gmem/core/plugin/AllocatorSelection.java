package dev.gmem.core.plugin;

import dev.gmem.api.PluginDescriptor.Kind;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.core.config.GmemConfig;
import java.util.List;
import java.util.Optional;

/**
 * Every usable allocator is active (files pick theirs by creation flags); {@code gmem.allocator}
 * only names the default for files whose flags no allocator claims.
 */
final class AllocatorSelection {

  static final String PROPERTY = GmemConfig.ALLOCATOR;

  private AllocatorSelection() {}

  /**
   * Resolves duplicates and returns the default allocator, if the property names a usable one.
   *
   * @param problems receives class-path problems
   * @param errors   receives configuration errors: the property names no usable allocator
   */
  static Optional<Candidate<AllocatorProvider>> select(
      List<Candidate<AllocatorProvider>> candidates, GmemConfig config, List<String> problems, List<String> errors) {
    Optional<Selector> selector = config.get(PROPERTY).map(v -> Selector.parse(PROPERTY, v));
    Duplicates.resolve(candidates, selector.stream().toList(),
        group -> "select one with -D" + PROPERTY + "=" + group.get(0).id + "@<part of its location>", problems);
    if (selector.isEmpty()) {
      return Optional.empty();
    }
    Selector s = selector.get();
    List<Candidate<AllocatorProvider>> active = candidates.stream().filter(Candidate::active).toList();
    Optional<Candidate<AllocatorProvider>> chosen = active.stream().filter(s::matches).findFirst();
    if (chosen.isPresent()) {
      chosen.get().note("default allocator (" + PROPERTY + ")");
    } else {
      errors.add(Unmatched.explain(Kind.ALLOCATOR, s, candidates, active.stream().map(c -> c.id).toList(),
          c -> "cannot be the default"));
    }
    return chosen;
  }
}
