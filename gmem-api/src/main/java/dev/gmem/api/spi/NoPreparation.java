package dev.gmem.api.spi;

/** The one "nothing prepared" object, for {@link Prepared#NOTHING} and {@link FolioAllocator.Restructure#NOTHING}. */
final class NoPreparation implements FolioAllocator.Restructure {
  static final NoPreparation INSTANCE = new NoPreparation();

  private NoPreparation() {}

  @Override
  public void commit() {}

  @Override
  public void abort() {}
}
