package dev.gmem.api;

/**
 * Who may fault a page in. Host faultability is derived from this plus the arch's verdict.
 *
 * <p>EXPERIMENTAL: the names mirror the in-place conversion proposal, still under review;
 * upstream may add RWX attributes beside PRIVATE.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.1")
public enum Shareability {
  /** Host and guest may fault the page. */
  SHARED,
  /** Only the guest may fault the page; host access fails (SIGBUS in the kernel). */
  PRIVATE,
  /** Transient state pKVM uses while host references drain: nobody may fault the page. */
  NONE
}
