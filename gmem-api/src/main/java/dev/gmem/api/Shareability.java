package dev.gmem.api;

/**
 * Who may fault a page in. Host faultability is derived from this plus the arch's verdict.
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public enum Shareability {
  /** Host and guest may fault the page. */
  SHARED,
  /** Only the guest may fault the page; host access fails (SIGBUS in the kernel). */
  PRIVATE,
  /** Transient state pKVM uses while host references drain: nobody may fault the page. */
  NONE
}
