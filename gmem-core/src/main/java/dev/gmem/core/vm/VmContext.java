package dev.gmem.core.vm;

import dev.gmem.api.spi.FaultInterceptor;
import dev.gmem.api.spi.Feature;
import dev.gmem.api.spi.FilemapListener;
import dev.gmem.api.spi.FolioAllocator;
import dev.gmem.core.inode.LiveInodes;
import dev.gmem.core.mapping.InaccessibleMemory;
import dev.gmem.core.memslot.MemslotLimits;
import dev.gmem.core.sys.Sys;
import java.util.List;
import java.util.function.LongFunction;
import java.util.function.LongSupplier;

/**
 * What a VM needs from its runtime.
 *
 * @param sys               syscalls
 * @param inaccessible      the SIGBUS memory mapped over pages the host may not fault
 * @param nextIno           inode numbers, unique per runtime
 * @param allocatorFor      the allocator for a file's creation flags
 * @param contributedFlags  creation flags present plugins give meaning to
 * @param listeners         filemap listeners of active features
 * @param interceptors      fault interceptors of active features
 * @param memslotLimits     the host kernel's memslot limits
 * @param inodes            every inode of the runtime that is not evicted, for the runtime to release
 *                          and for arch leak reports
 * @param features          the active features, asked for inode memory
 * @param memslotFlags      memslot flags active features give meaning to
 */
public record VmContext(
    Sys sys,
    InaccessibleMemory inaccessible,
    LongSupplier nextIno,
    LongFunction<FolioAllocator> allocatorFor,
    long contributedFlags,
    List<FilemapListener> listeners,
    List<FaultInterceptor> interceptors,
    MemslotLimits memslotLimits,
    LiveInodes inodes,
    List<Feature> features,
    int memslotFlags) {}
