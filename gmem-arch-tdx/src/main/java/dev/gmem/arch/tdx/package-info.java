/**
 * The TDX arch's inspection API: what the modelled TDX module holds for one TD ({@link
 * dev.gmem.arch.tdx.TdxModule}, reached with {@code vm.arch(TdxModule.class)}), its page states
 * and the ABI constants a VMM and a guest model use.
 */
package dev.gmem.arch.tdx;
