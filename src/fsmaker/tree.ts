/**
 * A file tree to put into a filesystem: what a tar archive or a directory describes, in one model
 * that the filesystem writers (ext4, FAT) consume and that kernel discovery reads.
 *
 * Two passes, because an archive (often compressed) can only be read forward:
 *  1. the metadata of every node (`nodes`), read once when the tree is opened, kept in memory
 *     (names, modes, owners, times, xattrs: a Debian tree's 30 000 nodes take a few MB);
 *  2. the bytes of the regular files, streamed in `nodes` order (`contents()`), so a writer that
 *     lays the files' blocks out in that order reads an archive once, front to back, and never
 *     holds more than a chunk of it.
 * A few whole files (a kernel, an initrd, kernel modules) can also be read by path
 * (`readFiles`): one more forward pass over an archive for all of them, bounded in total size.
 */

export type TreeNodeType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

export interface DataRange {
  offset: number;
  length: number;
}

export interface TreeNode {
  /**
   * Path relative to the root: '/'-separated, no leading or trailing '/', no '.', '..' or empty
   * components; '' is the root directory itself. Unique within a tree.
   */
  path: string;
  type: TreeNodeType;
  /** Permission bits with setuid, setgid and sticky (mode & 0o7777); the type is `type`. */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch; a fraction carries nanoseconds where the source has them. */
  mtime: number;
  /** Default: mtime. */
  atime?: number;
  /** Default: mtime. */
  ctime?: number;
  /** Regular files: the apparent size in bytes. 0 for every other type. */
  size: number;
  /**
   * Regular files: the ranges holding data, ascending and disjoint, within `size`; the rest is
   * holes (a sparse file). Absent: one range over the whole file.
   */
  dataRanges?: DataRange[];
  /** Symlinks: the target, as stored (not resolved). */
  target?: string;
  /**
   * A hard link: the path of an earlier node (any type but a directory) this entry is one more
   * name of. Its own type, mode, owner and contents are the target's; it has no contents pass.
   */
  linkTo?: string;
  /** Character and block devices. */
  rdev?: { major: number; minor: number };
  /** Extended attributes by full name ('security.capability', 'user.x', 'trusted.y'), raw values. */
  xattrs?: ReadonlyMap<string, Buffer>;
}

/** One piece of a regular file's bytes, from the contents pass. */
export interface FileChunk {
  /** Index into `nodes`. */
  node: number;
  /** Offset within the file; chunks of one file come in ascending order, within its data ranges. */
  offset: number;
  data: Buffer;
}

export interface FileTree {
  /** The archive or directory, for messages. */
  name: string;
  /** Every node, parents before their children, the root ('') first, a hard link after its target. */
  nodes: readonly TreeNode[];
  /**
   * The bytes of every regular file that is not a hard link, in `nodes` order, each file's data
   * ranges in order, in chunks of at most a few MiB. Each call is a new pass. A source whose bytes
   * differ from what the first pass said (a file that changed size, an archive that changed) fails
   * with a ToolError naming the file, never yields short or extra bytes.
   */
  contents(): AsyncIterable<FileChunk>;
  /**
   * Whole regular files by path (as in `nodes`; no symlinks followed): one pass over an archive
   * for all of them. Refuses more than `maxBytes` in total (a ToolError naming the tree).
   */
  readFiles(paths: readonly string[], maxBytes: number): Promise<Map<string, Buffer>>;
  /** Releases what the tree holds open (file descriptors, decoder processes). */
  close(): void;
}

/**
 * What kernel discovery needs from a root filesystem, whatever holds it: an ext2/3/4 image, a
 * directory or an archive. Paths are absolute ('/boot/vmlinuz'); nothing follows symlinks.
 */
export interface RootView {
  /** For messages: "ROOT" in "/boot/vmlinuz in ROOT". */
  name: string;
  /** The entry at `path`, or null when there is none. */
  stat(path: string): { type: TreeNodeType; size: number; target?: string } | null;
  /** Names in the directory at `path` (no '.' or '..'), or null when it is not a directory. */
  list(path: string): string[] | null;
  /** Whole regular files (see FileTree.readFiles). */
  readFiles(paths: readonly string[], maxBytes: number): Promise<Map<string, Buffer>>;
}

/** The nodes of `tree` by path. */
export function nodesByPath(tree: Pick<FileTree, 'nodes'>): Map<string, TreeNode> {
  return new Map(tree.nodes.map((n) => [n.path, n]));
}
