package dev.gmem.api.spi;

import dev.gmem.api.Api;

/**
 * A provider's answer to "can you run on this host?", with the reason shown by {@code gmem info}.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public record Support(boolean supported, String reason) {
  public static Support yes(String reason) {
    return new Support(true, reason);
  }

  public static Support no(String reason) {
    return new Support(false, reason);
  }
}
