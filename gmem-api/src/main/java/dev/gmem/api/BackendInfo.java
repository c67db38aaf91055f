package dev.gmem.api;

/**
 * The backend a runtime chose and why.
 *
 * @param name   {@code kvm} or {@code memfd}
 * @param reason the probe result or override that decided it
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public record BackendInfo(String name, String reason) {}
