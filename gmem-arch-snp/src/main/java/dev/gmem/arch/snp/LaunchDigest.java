package dev.gmem.arch.snp;

import dev.gmem.api.Api;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/**
 * The SEV-SNP launch digest as the firmware extends it on every {@code SNP_LAUNCH_UPDATE} page
 * (SEV-SNP Firmware ABI §8.17.2, "Layout of the PAGE_INFO structure"):
 * {@code DIGEST_CUR := SHA-384(PAGE_INFO)} with PAGE_INFO, 0x70 bytes little-endian:
 *
 * <pre>
 * 0x00  DIGEST_CUR   48  the digest so far (48 zero bytes at launch start)
 * 0x30  CONTENTS     48  SHA-384 of the page for NORMAL and VMSA, zero for ZERO, UNMEASURED, SECRETS, CPUID
 * 0x60  LENGTH        2  0x70
 * 0x62  PAGE_TYPE     1
 * 0x63  IMI_PAGE      1  0 (KVM never launches IMI pages)
 * 0x64  VMPL3_PERMS   1  0
 * 0x65  VMPL2_PERMS   1  0
 * 0x66  VMPL1_PERMS   1  0
 * 0x67  reserved      1  0
 * 0x68  GPA           8
 * </pre>
 *
 * The same chain that other tools compute for an expected measurement (e.g. virtee's
 * {@code sev-snp-measure}, {@code gctx.py}), so a digest from here compares with theirs for the
 * same pages. Not thread-safe: the arch serialises updates.
 */
@Api(status = Api.Status.EXPERIMENTAL, since = "0.2")
public final class LaunchDigest {
  /** SHA-384's size, the digest's. */
  public static final int SIZE = 48;
  /** {@code PAGE_INFO.LENGTH}. */
  public static final int PAGE_INFO_LENGTH = 0x70;

  private final MessageDigest sha384;
  private final ByteBuffer pageInfo = ByteBuffer.allocate(PAGE_INFO_LENGTH).order(ByteOrder.LITTLE_ENDIAN);
  private final byte[] current = new byte[SIZE];

  public LaunchDigest() {
    try {
      sha384 = MessageDigest.getInstance("SHA-384");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("the JDK has no SHA-384", e);
    }
  }

  /** Extends the digest by one page: {@code contents} is null for the zero CONTENTS, else the 4 KiB page to hash. */
  public void update(PageType type, long gpa, ByteBuffer contents) {
    pageInfo.clear();
    pageInfo.put(current);
    if (contents == null) {
      pageInfo.put(new byte[SIZE]);
    } else {
      sha384.update(contents.duplicate());
      pageInfo.put(sha384.digest());
    }
    pageInfo.putShort((short) PAGE_INFO_LENGTH).put((byte) type.value()).put((byte) 0);
    pageInfo.put((byte) 0).put((byte) 0).put((byte) 0).put((byte) 0);
    pageInfo.putLong(gpa);
    sha384.update(pageInfo.array());
    System.arraycopy(sha384.digest(), 0, current, 0, SIZE);
  }

  /** Continues from {@code other}'s digest (an encryption context moved to another VM). */
  void copyFrom(LaunchDigest other) {
    System.arraycopy(other.current, 0, current, 0, SIZE);
  }

  /** The digest so far (a copy). */
  public byte[] value() {
    return current.clone();
  }

  /** {@link #value()} as lower-case hex, as measurement tools print it. */
  public String hex() {
    StringBuilder s = new StringBuilder(2 * SIZE);
    for (byte b : current) {
      s.append(Character.forDigit((b >> 4) & 0xf, 16)).append(Character.forDigit(b & 0xf, 16));
    }
    return s.toString();
  }
}
