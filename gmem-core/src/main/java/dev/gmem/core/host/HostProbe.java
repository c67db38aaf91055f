package dev.gmem.core.host;

import dev.gmem.api.GmemException;
import dev.gmem.api.HostInfo;
import dev.gmem.api.HugePagePool;
import dev.gmem.api.KvmCapability;
import dev.gmem.core.sys.Fd;
import dev.gmem.core.sys.Kvm;
import dev.gmem.core.sys.Sys;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Asks the running kernel what it offers: KVM capabilities on a real DEFAULT VM fd (some caps
 * differ between /dev/kvm and VM scope), userfaultfd and memfd_secret by calling them, hugetlb
 * pools from sysfs. Never infers a feature from the kernel version.
 */
public final class HostProbe {
  private static final Pattern POOL_DIR = Pattern.compile("hugepages-(\\d+)kB");
  /** Where the kernel publishes its hugetlb pools. */
  public static final Path SYSFS_HUGEPAGES = Path.of("/sys/kernel/mm/hugepages");

  private final Sys sys;
  private final Kvm kvm;
  private final Path sysfsHugepages;

  public HostProbe(Sys sys, Kvm kvm) {
    this(sys, kvm, SYSFS_HUGEPAGES);
  }

  HostProbe(Sys sys, Kvm kvm, Path sysfsHugepages) {
    this.sys = sys;
    this.kvm = kvm;
    this.sysfsHugepages = sysfsHugepages;
  }

  public HostInfo probe() {
    Map<KvmCapability, Long> caps = new EnumMap<>(KvmCapability.class);
    Optional<String> kvmProblem = Optional.empty();
    int api = 0;
    long gmemFlags = 0;
    long vmTypes = 0;
    boolean kvmOk = false;
    try (Fd dev = kvm.openDevice()) {
      api = kvm.apiVersion(dev);
      if (api != Kvm.API_VERSION) {
        kvmProblem = Optional.of("KVM API version " + api + " (expected " + Kvm.API_VERSION + ")");
      } else {
        try (Fd vm = kvm.createVm(dev, 0)) {
          for (KvmCapability cap : KvmCapability.values()) {
            caps.put(cap, kvm.checkExtension(vm, cap.number()));
          }
        }
        vmTypes = caps.get(KvmCapability.VM_TYPES);
        gmemFlags = caps.get(KvmCapability.GUEST_MEMFD_FLAGS);
        kvmOk = true;
      }
    } catch (GmemException e) {
      kvmProblem = Optional.of(e.getMessage());
    }
    return new HostInfo(
        kernelRelease(), kvmOk, kvmProblem, api, caps, gmemFlags, vmTypes, userfaultfdWorks(), memfdSecretWorks(), hugePagePools());
  }

  private boolean userfaultfdWorks() {
    return syscallGivesFd(Sys.SYS_USERFAULTFD, Sys.O_CLOEXEC | Sys.O_NONBLOCK, "userfaultfd");
  }

  private boolean memfdSecretWorks() {
    return syscallGivesFd(Sys.SYS_MEMFD_SECRET, Sys.O_CLOEXEC, "memfd_secret");
  }

  private boolean syscallGivesFd(long nr, long arg, String name) {
    try {
      long fd = sys.syscall(nr, arg, name);
      sys.closeQuietly((int) fd);
      return true;
    } catch (GmemException e) {
      return false;
    }
  }

  /** Every pool under sysfs, ascending by page size; empty when sysfs is not readable. */
  public List<HugePagePool> hugePagePools() {
    return hugePagePools(sysfsHugepages);
  }

  /** The pools under {@code sysfsHugepages} as they are now (a hugetlb allocator's live view). */
  public static List<HugePagePool> hugePagePools(Path sysfsHugepages) {
    List<HugePagePool> pools = new ArrayList<>();
    if (!Files.isDirectory(sysfsHugepages)) {
      return pools;
    }
    try (Stream<Path> dirs = Files.list(sysfsHugepages)) {
      for (Path dir : (Iterable<Path>) dirs::iterator) {
        Matcher m = POOL_DIR.matcher(dir.getFileName().toString());
        if (m.matches()) {
          pools.add(new HugePagePool(
              Long.parseLong(m.group(1)) * 1024,
              readLong(dir.resolve("nr_hugepages")),
              readLong(dir.resolve("free_hugepages")),
              readLong(dir.resolve("resv_hugepages")),
              readLong(dir.resolve("surplus_hugepages"))));
        }
      }
    } catch (IOException e) {
      return pools;
    }
    pools.sort(Comparator.comparingLong(HugePagePool::pageSize));
    return pools;
  }

  private static long readLong(Path p) {
    try {
      return Long.parseLong(Files.readString(p).trim());
    } catch (IOException | NumberFormatException e) {
      return 0;
    }
  }

  private static String kernelRelease() {
    try {
      return Files.readString(Path.of("/proc/sys/kernel/osrelease")).trim();
    } catch (IOException e) {
      return System.getProperty("os.version", "unknown");
    }
  }
}
