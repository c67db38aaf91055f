package dev.gmem.api.spi;

import dev.gmem.api.Api;
import dev.gmem.api.Memslot;
import dev.gmem.api.Vm;

/**
 * A guest access as {@link FaultInterceptor#guestFault(GuestFault)} sees it: which VM, through
 * which memslot, to which page (KVM Userfault keeps its bitmap per memslot; a feature serving
 * several VMs needs the VM).
 *
 * @param vm        the VM whose vCPU faulted
 * @param slot      the memslot the GPA resolved through
 * @param page      the page of guest memory behind the GPA
 * @param gpa       the faulting guest physical address
 * @param write     whether the access is a store
 * @param isPrivate whether the access is private
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public record GuestFault(Vm vm, Memslot slot, GmemPage page, long gpa, boolean write, boolean isPrivate) {}
