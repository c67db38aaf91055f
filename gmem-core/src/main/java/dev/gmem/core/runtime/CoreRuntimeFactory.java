package dev.gmem.core.runtime;

import dev.gmem.api.GmemException;
import dev.gmem.api.GmemRuntime;
import dev.gmem.api.spi.RuntimeFactory;
import dev.gmem.core.backend.BackendSelector;
import dev.gmem.core.config.GmemConfig;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** Found by {@link GmemRuntime.Builder#build()} through ServiceLoader. */
public final class CoreRuntimeFactory implements RuntimeFactory {

  /**
   * @throws GmemException EINVAL naming every {@code gmem.*} property that cannot be honoured as
   *     written (an unknown key, or a value naming no backend, allocator, arch, VM type or
   *     feature), with what exists instead; checked before any backend resource is opened
   */
  @Override
  public GmemRuntime create(GmemRuntime.Builder builder) {
    GmemConfig config = GmemConfig.from(builder);
    RuntimeComponent component = DaggerRuntimeComponent.factory().create(config);
    List<String> errors = new ArrayList<>(config.unknownKeys());
    BackendSelector.unknown(config.get(GmemConfig.BACKEND)).ifPresent(errors::add);
    errors.addAll(component.plugins().configErrors());
    if (!errors.isEmpty()) {
      throw GmemException.einval(message(errors));
    }
    return component.runtime();
  }

  /** One problem on one line; several each on its own, sorted by the property they concern. */
  static String message(List<String> errors) {
    if (errors.size() == 1) {
      return "invalid gmem configuration: " + errors.get(0);
    }
    List<String> sorted = new ArrayList<>(errors);
    Collections.sort(sorted);
    return "invalid gmem configuration (" + errors.size() + " problems):\n  " + String.join("\n  ", sorted);
  }
}
