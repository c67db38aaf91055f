/**
 * Test-only Dagger components, in a package of their own to show that {@code PluginModule} works
 * from outside {@code dev.gmem.core.plugin}, as the runtime's component will use it.
 */
package dev.gmem.core.plugin.wiring;
