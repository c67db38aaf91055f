/**
 * The {@code gmem} tool, demos and JMH benchmarks. Picocli fills the commands' option fields by
 * reflection, hence the open package. On the module path the plugins (gmem-alloc-hugetlb and any
 * other) are found by service binding; nothing here requires them.
 */
@SuppressWarnings("requires-automatic") // JMH ships no module descriptor
module dev.gmem.examples {
  requires java.management; // the benchmark runner reports the JVM's input arguments
  requires dev.gmem.api;
  requires dev.gmem.core;
  requires dev.gmem.arch.tdx; // the demo's TD chapter and TdxBench: MRTD, the modelled TDX module's state
  requires dev.gmem.arch.pkvm; // the demo's pKVM chapter and PkvmBench inspect the hypervisor model and use its call numbers
  requires static dev.gmem.directmap; // info and demo use its API only when the feature was found
  requires dev.gmem.arch.snp; // the SNP demo chapter and SnpLaunchBench inspect its firmware model
  requires dev.gmem.userfault; // gmem snapshot / restore
  requires dev.gmem.migrate; // gmem migrate, the demo's post-copy chapter, PostcopyBench
  requires org.jnrproject.jffi; // PostcopyBench's raw baselines copy with MemoryIO, as C would
  requires com.google.common; // ConversionBench: TreeRangeMap, the range map the shareability store is measured against
  requires info.picocli;
  requires jmh.core;

  opens dev.gmem.examples.cli to info.picocli;
}
