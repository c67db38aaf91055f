package dev.gmem.api.spi;

import dev.gmem.api.Api;

/** An active feature: the hooks it installs. Defaults install nothing. */
@Api(status = Api.Status.STABLE, since = "0.1")
public interface Feature {

  default FilemapListener filemapListener() {
    return null;
  }

  default FaultInterceptor faultInterceptor() {
    return null;
  }
}
