package dev.gmem.arch.pkvm;

/**
 * pKVM's page states ({@code enum pkvm_page_state}), kept per page in the software bits of each
 * component's stage-2 entry (host: also in {@code struct hyp_page}). A page has one state in the
 * host's view and one in the guest's.
 */
public enum PageState {
  /** {@code PKVM_PAGE_OWNED}: the component owns the page and nobody else may access it. */
  OWNED,
  /** {@code PKVM_PAGE_SHARED_OWNED} (SW0): owned, and shared with another component. */
  SHARED_OWNED,
  /** {@code PKVM_PAGE_SHARED_BORROWED} (SW1): another component's page, shared with this one. */
  SHARED_BORROWED,
  /** {@code PKVM_NOPAGE} (SW0|SW1): not mapped here; for the host, annotated as another component's. */
  NOPAGE
}
