package dev.gmem.directmap;

import dev.gmem.api.Api;
import dev.gmem.api.spi.TemporaryMapping;

/**
 * The direct-map feature's counters.
 *
 * @param inodes           live NO_DIRECT_MAP inodes in secret memory
 * @param passedThrough    NO_DIRECT_MAP inodes left to a kernel that removes the direct map itself
 * @param removedPages     pages removed from gmem's direct map now
 * @param zaps             folios removed from gmem's direct map (at filemap add)
 * @param restores         folios given back to it (at filemap removal)
 * @param splits           folio splits heard of
 * @param merges           folio merges heard of
 * @param refusedPins      pins refused with EFAULT
 * @param residentBytes    secret memory the kernel holds for live inodes
 * @param heldBytes        of which left the filemap (punched, zeroed, not yet freeable)
 * @param releasedBytes    secret memory given back by evicted inodes
 * @param zapFailures      zaps the kernel refused (mprotect: ENOMEM); the page stayed reachable through gmem's direct map
 * @param viewProtects     {@code mprotect} calls on gmem's direct maps: a folio's first add costs none
 *                         (its page was never mapped there), a restore one, a run of restored pages
 *                         leaving again one per stretch
 * @param temporaryMappings the runtime's temporary mappings
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public record DirectMapStats(
    long inodes,
    long passedThrough,
    long removedPages,
    long zaps,
    long restores,
    long splits,
    long merges,
    long refusedPins,
    long residentBytes,
    long heldBytes,
    long releasedBytes,
    long zapFailures,
    long viewProtects,
    TemporaryMapping.Stats temporaryMappings) {}
