package dev.gmem.arch.tdx;

/** The TDX-module host calls (SEAMCALL leaves) the plugin models, by their ABI names. */
public enum Seamcall {
  TDH_MEM_PAGE_ADD("TDH.MEM.PAGE.ADD"),
  TDH_MR_EXTEND("TDH.MR.EXTEND"),
  TDH_MR_FINALIZE("TDH.MR.FINALIZE"),
  TDH_MEM_PAGE_AUG("TDH.MEM.PAGE.AUG"),
  TDH_MEM_PAGE_DEMOTE("TDH.MEM.PAGE.DEMOTE"),
  TDH_MEM_RANGE_BLOCK("TDH.MEM.RANGE.BLOCK"),
  TDH_MEM_TRACK("TDH.MEM.TRACK"),
  TDH_MEM_PAGE_REMOVE("TDH.MEM.PAGE.REMOVE"),
  TDH_PHYMEM_PAGE_WBINVD("TDH.PHYMEM.PAGE.WBINVD");

  private final String abiName;

  Seamcall(String abiName) {
    this.abiName = abiName;
  }

  /** The name in the TDX module ABI specification. */
  public String abiName() {
    return abiName;
  }

  @Override
  public String toString() {
    return abiName;
  }
}
