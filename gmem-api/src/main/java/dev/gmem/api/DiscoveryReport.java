package dev.gmem.api;

import java.util.List;

/**
 * Everything plugin discovery found, in a stable order (kind, then id).
 *
 * @param plugins  one entry per discovered provider
 * @param problems problems that are not tied to one entry (duplicate ids, bad selection properties)
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public record DiscoveryReport(List<PluginDescriptor> plugins, List<String> problems) {

  public DiscoveryReport {
    plugins = List.copyOf(plugins);
    problems = List.copyOf(problems);
  }

  /** Entries of one kind. */
  public List<PluginDescriptor> ofKind(PluginDescriptor.Kind kind) {
    return plugins.stream().filter(p -> p.kind() == kind).toList();
  }
}
