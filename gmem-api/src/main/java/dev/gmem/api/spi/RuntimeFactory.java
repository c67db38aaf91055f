package dev.gmem.api.spi;

import dev.gmem.api.Api;
import dev.gmem.api.GmemRuntime;

/** Implemented once, by gmem-core; {@link GmemRuntime.Builder#build()} finds it through ServiceLoader. */
@Api(status = Api.Status.INTERNAL, since = "0.1")
public interface RuntimeFactory {
  GmemRuntime create(GmemRuntime.Builder builder);
}
