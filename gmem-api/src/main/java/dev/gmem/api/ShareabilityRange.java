package dev.gmem.api;

/**
 * A maximal run of pages {@code [start, end)} (page indices) with one shareability.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public record ShareabilityRange(long start, long end, Shareability shareability) {
  public ShareabilityRange {
    if (end <= start) {
      throw new IllegalArgumentException("empty range [" + start + ", " + end + ")");
    }
  }

  public long nrPages() {
    return end - start;
  }

  @Override
  public String toString() {
    return "[" + start + ", " + end + ") " + shareability;
  }
}
