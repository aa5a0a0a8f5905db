/**
 * A directory as a FileTree: an lstat walk (symlinks are not followed), names in byte order so two
 * walks of one tree give the same nodes, hard links by device and inode, device numbers from
 * rdev, times in nanoseconds, extended attributes by llistxattr/lgetxattr, sparse files' data
 * ranges by SEEK_DATA/SEEK_HOLE.
 *
 * One filesystem, as `tar --one-file-system`: a directory on another device (a mount point below
 * the root: /proc, /sys, a bind mount in a chroot) is kept as an empty directory, with its own
 * metadata, and listed in `mountPoints` for the caller to report.
 *
 * Every regular file is opened in the first pass, so one that cannot be read (EACCES as non-root:
 * /etc/shadow) is an error naming it before anything is written. The contents pass checks each
 * file is the one the first pass saw (same inode, same size before and after reading it).
 */
import fs from 'node:fs';
import { ToolError, describeSystemError } from '../errors.js';
import { readXattrs, seekData, seekHole } from '../io/ffi.js';
import type { DataRange, FileChunk, FileTree, TreeNode, TreeNodeType } from './tree.js';
import { TAR_LIMITS } from './tree-tar.js';
import { filesToRead } from './tree-view.js';

export interface DirectoryTree extends FileTree {
  /** Directories below the root on another filesystem, kept empty (paths as in `nodes`). */
  mountPoints: string[];
}

const READ_BYTES = 1 << 20;

const cannot = (path: string, what: string, err: unknown): ToolError =>
  new ToolError('ROOTFS_OPEN', `${path}: cannot ${what}: ${describeSystemError(err)}`, { cause: err });

function typeOf(st: fs.BigIntStats): TreeNodeType | null {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return null;
}

const seconds = (ns: bigint): number => Number(ns / 1_000_000_000n) + Number(ns % 1_000_000_000n) / 1e9;

/** Linux's dev_t encoding (glibc's gnu_dev_major/minor). */
function deviceNumbers(rdev: bigint): { major: number; minor: number } {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return { major, minor };
}

/** Where a file's data is (null: all of it, or the filesystem cannot say). */
function dataRangesOf(fd: number, size: number): DataRange[] | null {
  const ranges: DataRange[] = [];
  let at = 0;
  while (at < size) {
    const data = seekData(fd, at);
    if (data.kind === 'unsupported') return null;
    if (data.kind === 'end' || data.offset >= size) break;
    const hole = seekHole(fd, data.offset);
    if (hole.kind !== 'offset') return null;
    const end = Math.min(hole.offset, size);
    ranges.push({ offset: data.offset, length: end - data.offset });
    at = end;
  }
  return ranges.length === 1 && ranges[0]!.offset === 0 && ranges[0]!.length === size ? null : ranges;
}

export function openDirectoryTree(root: string): DirectoryTree {
  const nodes: TreeNode[] = [];
  const inodes = new Map<TreeNode, bigint>();
  const firstNames = new Map<string, TreeNode>();
  const mountPoints: string[] = [];
  const full = (path: string): string => (path === '' ? root : root.endsWith('/') ? `${root}${path}` : `${root}/${path}`);
  let rootDev: bigint | null = null;

  const visit = (path: string, st: fs.BigIntStats): void => {
    const where = full(path);
    const type = typeOf(st);
    if (!type) throw new ToolError('ROOTFS_UNKNOWN', `${where}: a file of unknown type (mode ${st.mode.toString(8)})`);
    if (nodes.length >= TAR_LIMITS.nodes) throw new ToolError('ROOTFS_UNKNOWN', `${root}: more than ${TAR_LIMITS.nodes} files`);
    const node: TreeNode = { path, type, mode: Number(st.mode) & 0o7777, uid: Number(st.uid), gid: Number(st.gid), mtime: seconds(st.mtimeNs), atime: seconds(st.atimeNs), ctime: seconds(st.ctimeNs), size: 0 };
    const key = `${st.dev}:${st.ino}`;
    const first = type !== 'dir' && st.nlink > 1n ? firstNames.get(key) : undefined;
    if (first !== undefined) {
      const { dataRanges: _r, ...rest } = first;
      nodes.push({ ...rest, path, linkTo: first.path });
      return;
    }
    if (type !== 'dir' && st.nlink > 1n) firstNames.set(key, node);
    let xattrs: Map<string, Buffer> | null;
    try {
      xattrs = readXattrs(where);
    } catch (err) {
      throw cannot(where, 'read its extended attributes', err);
    }
    if (xattrs && xattrs.size > 0) node.xattrs = xattrs;
    if (type === 'symlink') {
      try {
        node.target = fs.readlinkSync(where, 'buffer').toString('utf8');
      } catch (err) {
        throw cannot(where, 'read the link', err);
      }
    }
    if (type === 'char' || type === 'block') node.rdev = deviceNumbers(st.rdev);
    if (type === 'file') {
      node.size = Number(st.size);
      let fd: number;
      try {
        fd = fs.openSync(where, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
      } catch (err) {
        throw cannot(where, 'read it', err);
      }
      try {
        // Only a file with fewer blocks than bytes can have holes: the others are not asked.
        if (st.blocks * 512n < st.size) {
          const ranges = dataRangesOf(fd, node.size);
          if (ranges) node.dataRanges = ranges;
        }
      } finally {
        fs.closeSync(fd);
      }
      inodes.set(node, st.ino);
    }
    nodes.push(node);
    if (type !== 'dir') return;
    if (rootDev !== null && st.dev !== rootDev) {
      mountPoints.push(path);
      return;
    }
    let names: Buffer[];
    try {
      names = fs.readdirSync(where, { encoding: 'buffer' });
    } catch (err) {
      throw cannot(where, 'list the directory', err);
    }
    names.sort(Buffer.compare);
    for (const raw of names) {
      const name = raw.toString('utf8');
      if (!Buffer.from(name, 'utf8').equals(raw)) throw new ToolError('ROOTFS_UNKNOWN', `${where}: the name ${JSON.stringify(raw.toString('latin1'))} is not UTF-8`);
      const child = path === '' ? name : `${path}/${name}`;
      let childStat: fs.BigIntStats;
      try {
        childStat = fs.lstatSync(full(child), { bigint: true });
      } catch (err) {
        throw cannot(full(child), 'stat it', err);
      }
      visit(child, childStat);
    }
  };

  let rootStat: fs.BigIntStats;
  try {
    rootStat = fs.statSync(root, { bigint: true });
  } catch (err) {
    throw cannot(root, 'open the directory', err);
  }
  rootDev = rootStat.dev;
  visit('', rootStat);

  async function* contentsOf(wanted: readonly number[]): AsyncGenerator<FileChunk> {
    for (const index of wanted) yield* fileChunks(index, nodes[index]!, full(nodes[index]!.path), inodes.get(nodes[index]!)!);
  }
  const withContents = nodes.flatMap((n, i) => (n.type === 'file' && n.linkTo === undefined && n.size > 0 ? [i] : []));
  return {
    name: root,
    nodes,
    mountPoints,
    contents: () => contentsOf(withContents),
    async readFiles(paths, maxBytes) {
      const targets = filesToRead(root, nodes, paths, maxBytes);
      const indexOf = new Map(nodes.map((n, i) => [n, i]));
      const buffers = new Map<TreeNode, Buffer>();
      for (const node of targets.values()) buffers.set(node, Buffer.alloc(node.size));
      const wanted = [...buffers.keys()].filter((n) => n.size > 0).map((n) => indexOf.get(n)!);
      wanted.sort((a, b) => a - b);
      for await (const chunk of contentsOf(wanted)) chunk.data.copy(buffers.get(nodes[chunk.node]!)!, chunk.offset);
      return new Map([...targets].map(([p, node]) => [p, buffers.get(node)!]));
    },
    close: () => undefined,
  };
}

async function* fileChunks(index: number, node: TreeNode, where: string, ino: bigint): AsyncGenerator<FileChunk> {
  let fd: number;
  try {
    fd = fs.openSync(where, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (err) {
    throw cannot(where, 'read it', err);
  }
  const changed = (how: string): ToolError => new ToolError('ROOTFS_OPEN', `${where}: changed while being read (${how})`);
  try {
    const before = fs.fstatSync(fd, { bigint: true });
    if (!before.isFile() || before.ino !== ino) throw changed('it is another file now');
    if (Number(before.size) !== node.size) throw changed(`${node.size} bytes when first seen, ${before.size} now`);
    for (const range of node.dataRanges ?? [{ offset: 0, length: node.size }]) {
      for (let done = 0; done < range.length; ) {
        const buffer = Buffer.allocUnsafe(Math.min(READ_BYTES, range.length - done));
        let n: number;
        try {
          n = await new Promise<number>((resolve, reject) => fs.read(fd, buffer, 0, buffer.length, range.offset + done, (err, got) => (err ? reject(err) : resolve(got))));
        } catch (err) {
          throw cannot(where, 'read it', err);
        }
        if (n === 0) throw changed(`it ends at byte ${range.offset + done}, not ${node.size}`);
        yield { node: index, offset: range.offset + done, data: n === buffer.length ? buffer : buffer.subarray(0, n) };
        done += n;
      }
    }
    const after = fs.fstatSync(fd, { bigint: true });
    if (Number(after.size) !== node.size) throw changed(`${node.size} bytes when first seen, ${after.size} after reading`);
  } finally {
    fs.closeSync(fd);
  }
}
