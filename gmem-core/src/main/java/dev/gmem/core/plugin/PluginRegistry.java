package dev.gmem.core.plugin;

import dev.gmem.api.DiscoveryReport;
import dev.gmem.api.HostInfo;
import dev.gmem.api.PluginDescriptor;
import dev.gmem.api.PluginDescriptor.Kind;
import dev.gmem.api.PluginDescriptor.Status;
import dev.gmem.api.VmType;
import dev.gmem.api.spi.AllocatorProvider;
import dev.gmem.api.spi.ArchProvider;
import dev.gmem.api.spi.FeatureProvider;
import dev.gmem.api.spi.GmemProvider;
import dev.gmem.core.config.GmemConfig;
import java.util.ArrayList;
import java.util.Collection;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;
import java.util.stream.Stream;
import jakarta.inject.Inject;
import jakarta.inject.Singleton;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The plugins of one runtime: every discovered provider probed once, the selection made, and a
 * report of what became of each. Nothing a plugin does here (failing to load, throwing from
 * {@code id()} or {@code probe}) stops the runtime; it becomes a {@link Status#BROKEN} entry.
 *
 * <p>Selection rules:
 * <ul>
 *   <li>A provider whose probe says no is {@link Status#UNSUPPORTED}, with the probe's reason.
 *   <li>Two providers of one kind with the same id are an error listing both locations; neither is
 *       used unless a selection property picks exactly one by {@code id@<part of its location>}
 *       (the part is a plain substring of the location shown in the report).
 *   <li>Allocators: all usable ones are active; {@code gmem.allocator=<id>} names the default for
 *       files whose flags no allocator claims.
 *   <li>Arches, per VM type: {@code gmem.arch.<TYPE>=<id>}; else a provider from outside gmem-core's
 *       jar over a built-in; among several, the smallest id, with a warning. Losers are
 *       {@link Status#NOT_SELECTED}.
 *   <li>Features: on unless {@code gmem.feature.<id>=false} ({@link Status#DISABLED}, not probed).
 *   <li>A property naming no usable provider, an unknown VM type or a feature switch that is not
 *       {@code true}/{@code false} is a {@linkplain #configErrors() configuration error} listing
 *       what exists; runtime creation fails with it rather than run something the operator did not
 *       choose. Class-path problems (duplicates, several arches for one type) only warn, in the
 *       {@linkplain #report() report}.
 * </ul>
 *
 * <p>Singleton so that each provider is instantiated and probed once per runtime component.
 */
@Singleton
public final class PluginRegistry {

  private static final Logger LOG = LoggerFactory.getLogger(PluginRegistry.class);

  private final List<AllocatorProvider> allocators;
  private final Optional<AllocatorProvider> defaultAllocator;
  private final Map<VmType, ArchProvider> arches;
  private final List<FeatureProvider> features;
  private final long contributedFlags;
  private final List<String> configErrors;
  private final DiscoveryReport report;

  /** Built by Dagger from {@link PluginModule}'s sets. */
  @Inject
  public PluginRegistry(Set<Discovered<AllocatorProvider>> allocators, Set<Discovered<ArchProvider>> arches,
      Set<Discovered<FeatureProvider>> features, GmemConfig config, HostInfo host) {
    this(allocators, arches, features, config, host, Locations.of(PluginRegistry.class));
  }

  /** @param coreLocation the location whose arch providers count as built-ins */
  PluginRegistry(Set<Discovered<AllocatorProvider>> allocators, Set<Discovered<ArchProvider>> arches,
      Set<Discovered<FeatureProvider>> features, GmemConfig config, HostInfo host, String coreLocation) {
    List<String> problems = new ArrayList<>();
    List<String> errors = new ArrayList<>();
    List<Candidate<AllocatorProvider>> allocatorCandidates =
        inspect(Kind.ALLOCATOR, allocators, host, id -> Optional.empty());
    Optional<Candidate<AllocatorProvider>> dflt =
        AllocatorSelection.select(allocatorCandidates, config, problems, errors);
    List<Candidate<ArchProvider>> archCandidates = inspect(Kind.ARCH, arches, host, id -> Optional.empty());
    Map<VmType, Candidate<ArchProvider>> chosen =
        ArchSelection.select(archCandidates, config, coreLocation, problems, errors);
    Map<String, String> off = FeatureSelection.disabled(config, errors);
    List<Candidate<FeatureProvider>> featureCandidates =
        inspect(Kind.FEATURE, features, host, id -> Optional.ofNullable(off.get(id)));
    FeatureSelection.select(featureCandidates, config, problems, errors);
    this.configErrors = List.copyOf(errors);

    this.allocators = activeProviders(allocatorCandidates);
    this.defaultAllocator = dflt.map(c -> c.provider);
    Map<VmType, ArchProvider> archMap = new EnumMap<>(VmType.class);
    chosen.forEach((type, c) -> archMap.put(type, c.provider));
    this.arches = archMap;
    this.features = activeProviders(featureCandidates);
    this.contributedFlags = Stream.concat(allocatorCandidates.stream(), featureCandidates.stream())
        .filter(Candidate::active)
        .mapToLong(c -> c.creationFlags)
        .reduce(0L, (a, b) -> a | b);
    List<PluginDescriptor> plugins = Stream.of(allocatorCandidates, archCandidates, featureCandidates)
        .flatMap(List::stream)
        .sorted(Candidate.ORDER)
        .map(Candidate::descriptor)
        .toList();
    this.report = new DiscoveryReport(plugins, problems);
    log(report);
  }

  /** The arch provider chosen for {@code type}, if any serves it. */
  public Optional<ArchProvider> archFor(VmType type) {
    return Optional.ofNullable(arches.get(type));
  }

  /** Active allocators, by id. */
  public List<AllocatorProvider> allocators() {
    return allocators;
  }

  /**
   * The active allocator that claims files created with {@code flags}; the smallest id when
   * several do. A {@code claimsFlags} that throws counts as not claiming.
   */
  public Optional<AllocatorProvider> allocatorClaiming(long flags) {
    for (AllocatorProvider allocator : allocators) {
      try {
        if (allocator.claimsFlags(flags)) {
          return Optional.of(allocator);
        }
      } catch (RuntimeException | LinkageError e) {
        LOG.warn("gmem allocator '{}' failed to answer claimsFlags(0x{}); treated as not claiming",
            allocator.id(), Long.toHexString(flags), e);
      }
    }
    return Optional.empty();
  }

  /** The allocator {@code gmem.allocator} names, when it names an active one. */
  public Optional<AllocatorProvider> defaultAllocator() {
    return defaultAllocator;
  }

  /** Active features, by id. */
  public List<FeatureProvider> features() {
    return features;
  }

  /** The creation-flag bits active allocators and features give meaning to. */
  public long contributedFlags() {
    return contributedFlags;
  }

  /**
   * The selection properties that cannot be honoured as written, one line each naming what
   * exists; empty when all can. The runtime refuses to start with any.
   */
  public List<String> configErrors() {
    return configErrors;
  }

  /** Every discovered provider, by kind then id, and the problems found. */
  public DiscoveryReport report() {
    return report;
  }

  private static <P extends GmemProvider> List<Candidate<P>> inspect(Kind kind, Collection<Discovered<P>> found,
      HostInfo host, Function<String, Optional<String>> disabledBy) {
    // ServiceLoader sets have no defined order; sorting makes selection and the report stable.
    return found.stream().map(d -> Candidate.inspect(kind, d, host, disabledBy)).sorted(Candidate.ORDER).toList();
  }

  private static <P extends GmemProvider> List<P> activeProviders(List<Candidate<P>> candidates) {
    return candidates.stream().filter(Candidate::active).map(c -> c.provider).toList();
  }

  private static void log(DiscoveryReport report) {
    for (PluginDescriptor p : report.plugins()) {
      String noun = Messages.noun(p.kind());
      String message = p.messageIfAny().map(m -> ": " + m).orElse("");
      if (p.status() == Status.BROKEN) {
        LOG.warn("gmem {} '{}' {} from {} ({}): {}{}", noun, p.id(), p.version(), p.location(), p.providerClass(),
            p.status(), message);
      } else {
        LOG.info("gmem {} '{}' {} from {} ({}): {}{}", noun, p.id(), p.version(), p.location(), p.providerClass(),
            p.status(), message);
      }
    }
    report.problems().forEach(problem -> LOG.warn("gmem plugin problem: {}", problem));
  }
}
