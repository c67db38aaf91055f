/**
 * gmem's technology compatibility kit: abstract JUnit 5 contract tests that an arch or allocator
 * plugin runs by extending a class and naming its provider. Depends on gmem's API and JUnit's API
 * only; the runtime comes from the test class path. Its internal providers are found through a
 * per-runtime services directory, i.e. on the class path (how every gmem test runs).
 */
module dev.gmem.tck {
  requires transitive dev.gmem.api;
  requires transitive org.junit.jupiter.api;

  exports dev.gmem.tck;

  opens dev.gmem.tck to org.junit.platform.commons;
}
