/** The effective gmem configuration handed to core components. */
package dev.gmem.core.config;
