package dev.gmem.core.backend;

import dev.gmem.api.VmType;
import dev.gmem.core.sys.Fd;

/**
 * Where the bytes of an inode live. Both backends hand out one real fd per inode, mmapped
 * MAP_SHARED; everything above this interface is backend-independent, so both give the same
 * results and errnos.
 */
public interface Backend extends AutoCloseable {

  /** {@code kvm} or {@code memfd}. */
  String name();

  /**
   * What the backend found about conversions, for the runtime's backend line ({@code gmem info}):
   * empty where no kernel is asked (memfd).
   */
  default String conversionReport() {
    return "";
  }

  /** A VM's backend state: a real KVM VM fd on the kvm backend, nothing on memfd. */
  BackendVm createVm(VmType type);

  @Override
  void close();
}
