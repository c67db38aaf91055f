package dev.gmem.api;

/** {@code mmap(2)} protection bits ({@code PROT_*}) accepted by {@link GuestMemFile#map}; the flags are in {@link MapFlags}. */
@Api(status = Api.Status.STABLE, since = "0.1")
public final class Prot {
  public static final int NONE = 0;
  public static final int READ = 1;
  public static final int WRITE = 2;
  public static final int EXEC = 4;
  public static final int READ_WRITE = READ | WRITE;

  private Prot() {}
}
