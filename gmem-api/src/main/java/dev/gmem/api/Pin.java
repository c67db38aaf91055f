package dev.gmem.api;

/**
 * Long-term references on a file range, as a device pins memory for DMA (GUP pins, IOMMU
 * mappings). While a page is pinned, converting it to private fails with EAGAIN at that page;
 * closing the pin drops the references.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public interface Pin extends AutoCloseable {

  /** File offset of the first pinned byte. */
  long offset();

  long size();

  boolean isHeld();

  /** Releases the references. Idempotent. */
  @Override
  void close();
}
