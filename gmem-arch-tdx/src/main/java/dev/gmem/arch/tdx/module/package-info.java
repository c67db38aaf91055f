/**
 * The TDX arch's implementation: the provider, the hooks with the modelled TDX module behind them
 * (S-EPT and PAMT, MRTD, SEAMCALL failures), and the guest's MapGPA protocol. Not exported.
 */
package dev.gmem.arch.tdx.module;
