package dev.gmem.api;

/**
 * What {@code fstat} reports for a guest_memfd file.
 *
 * @param size    {@code st_size}: the immutable file size
 * @param blksize {@code st_blksize}: the page size
 * @param ino     {@code st_ino}: distinct per inode; links share it
 * @param mode    {@code st_mode} (0100600)
 */
@Api(status = Api.Status.STABLE, since = "0.1")
public record FileStat(long size, long blksize, long ino, int mode) {}
