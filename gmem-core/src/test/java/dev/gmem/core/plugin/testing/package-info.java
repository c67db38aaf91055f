/** Helpers that build plugin jars at test time and load them in isolation. */
package dev.gmem.core.plugin.testing;
