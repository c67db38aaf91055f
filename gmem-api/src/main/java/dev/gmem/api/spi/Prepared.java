package dev.gmem.api.spi;

import dev.gmem.api.Api;

/**
 * The second phase of a two-phase step that an operation with a point of no return asks a plugin
 * for (an allocator's split or merge, an arch's conversion run): everything fallible happened in
 * the preparation; {@link #commit()} runs after the point of no return and must not throw;
 * {@link #abort()} undoes the preparation when a later step fails.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public interface Prepared {
  /** Nothing was prepared: commit and abort do nothing. */
  Prepared NOTHING = NoPreparation.INSTANCE;

  void commit();

  void abort();
}
