/**
 * How long a shared name may be: one limit per thing, defined here and nowhere else. The file server
 * does not advertise a longer name, the master refuses one, the client refuses to ask for one, and the
 * index and transfer wire formats carry no more.
 */

/** Suffix of a download in progress. File servers never serve these. */
export const PART_SUFFIX = ".ftx-part";

/**
 * A whole name, in UTF-8 bytes. A transfer REQUEST carrying it stays one unfragmented datagram on a
 * 1500-byte MTU, and `ftx fetch` asks the index for a name with a LIST pattern, which carries as much.
 */
export const MAX_NAME_BYTES = 1024;

/** What file systems allow for one path component (NAME_MAX on Linux, ext4, xfs, btrfs, APFS). */
const FS_NAME_MAX_BYTES = 255;

/**
 * One path segment (`a/b/c` has three), in UTF-8 bytes. The client writes `<segment>.ftx-part` until
 * the file is complete, and that must still fit the file system's 255.
 */
export const MAX_SEGMENT_NAME_BYTES = FS_NAME_MAX_BYTES - PART_SUFFIX.length; // 246
