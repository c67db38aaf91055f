package dev.gmem.migrate;

import dev.gmem.api.Api;
import java.time.Duration;

/**
 * How a destination waits: for a source to reconnect after the link broke ({@code recoveryTimeout};
 * past it the VM is paused for good and every fault fails), and how long a fault may wait for its
 * page: this VM's userfault deadline (its page source's, so the runtime-wide
 * {@code Userfault.deadline()} and other VMs' stay as they are).
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public record DestinationOptions(Duration recoveryTimeout, Duration faultDeadline) {
  public DestinationOptions {
    java.util.Objects.requireNonNull(recoveryTimeout, "recoveryTimeout");
    java.util.Objects.requireNonNull(faultDeadline, "faultDeadline");
    if (recoveryTimeout.isNegative()) {
      throw new IllegalArgumentException("recoveryTimeout must not be negative: " + recoveryTimeout);
    }
    if (faultDeadline.isNegative() || faultDeadline.isZero()) {
      throw new IllegalArgumentException("faultDeadline must be positive: " + faultDeadline);
    }
  }

  /** 10 s of recovery, 10 s per fault. */
  public static DestinationOptions defaults() {
    return new DestinationOptions(Duration.ofSeconds(10), Duration.ofSeconds(10));
  }

  public DestinationOptions withRecoveryTimeout(Duration d) {
    return new DestinationOptions(d, faultDeadline);
  }

  public DestinationOptions withFaultDeadline(Duration d) {
    return new DestinationOptions(recoveryTimeout, d);
  }
}
