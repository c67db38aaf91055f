package dev.gmem.core.plugin;

/**
 * The value of a selection property ({@code gmem.allocator}, {@code gmem.arch.<TYPE>}): a provider
 * id, optionally followed by {@code @} and part of the provider's location. The part is what
 * tells apart two jars that declare the same id, e.g. {@code hugetlb@gmem-alloc-hugetlb-1.2}; it is
 * matched as a plain, case-sensitive substring of the location the discovery report shows. Ids
 * cannot contain {@code @}; the first {@code @} splits.
 *
 * @param key          the property name
 * @param value        the property value as given
 * @param id           the provider id
 * @param locationPart part of the location, empty for "any location"
 */
record Selector(String key, String value, String id, String locationPart) {

  static Selector parse(String key, String value) {
    String trimmed = value.trim();
    int at = trimmed.indexOf('@');
    return at < 0
        ? new Selector(key, value, trimmed, "")
        : new Selector(key, value, trimmed.substring(0, at), trimmed.substring(at + 1));
  }

  boolean matches(Candidate<?> candidate) {
    return candidate.id.equals(id) && candidate.location.contains(locationPart);
  }

  /** {@code key=value}, as problems quote it. */
  String text() {
    return key + "=" + value;
  }
}
