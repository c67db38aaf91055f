/**
 * Plugin discovery: {@link java.util.ServiceLoader} finds allocator, arch and feature providers,
 * {@link dev.gmem.core.plugin.PluginModule} hands them to Dagger, and
 * {@link dev.gmem.core.plugin.PluginRegistry} probes them, selects among them and reports what
 * became of each.
 */
package dev.gmem.core.plugin;
