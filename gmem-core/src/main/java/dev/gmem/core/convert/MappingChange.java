package dev.gmem.core.convert;

/** A prepared change of a host mapping: {@link #apply} cannot fail, {@link #abort} gives back what was prepared. */
public interface MappingChange {
  MappingChange NONE = new MappingChange() {
    @Override
    public void apply() {}

    @Override
    public void abort() {}
  };

  void apply();

  void abort();
}
