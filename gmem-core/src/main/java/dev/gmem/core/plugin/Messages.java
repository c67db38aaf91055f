package dev.gmem.core.plugin;

import dev.gmem.api.PluginDescriptor.Kind;
import java.util.List;
import java.util.Locale;

/** Wording shared by the report's problems and messages, so that they read alike. */
final class Messages {

  private Messages() {}

  /** {@code allocator}, {@code arch}, {@code feature}. */
  static String noun(Kind kind) {
    return kind.name().toLowerCase(Locale.ROOT);
  }

  /** {@code a}, {@code a and b}, {@code a, b and c}. */
  static String and(List<String> items) {
    if (items.size() <= 1) {
      return String.join("", items);
    }
    return String.join(", ", items.subList(0, items.size() - 1)) + " and " + items.get(items.size() - 1);
  }

  /** {@code a, b}, or {@code none}: the ids a user could have meant. */
  static String available(List<String> ids) {
    return ids.isEmpty() ? "none" : String.join(", ", ids);
  }
}
