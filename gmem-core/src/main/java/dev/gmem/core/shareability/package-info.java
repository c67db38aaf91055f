/**
 * Per-inode shareability tracking: {@link dev.gmem.core.shareability.ShareabilityStore}, a
 * copy-on-write range map with lock-free readers and two-phase (prepare/commit) updates.
 */
package dev.gmem.core.shareability;
