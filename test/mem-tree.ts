/**
 * A FileTree stand-in for the filesystem writers' tests: the nodes as given, and each regular
 * file's bytes from `bytes(path, offset, length)`, yielded in 1 MiB chunks of its data ranges (a
 * range below 1 MiB as one chunk), as an archive's contents pass would.
 */
import type { FileChunk, FileTree, TreeNode } from '../src/fsmaker/tree.js';

export const MEM_TREE_CHUNK = 1024 * 1024;

export function memTree(
  nodes: TreeNode[],
  bytes: (p: string, offset: number, length: number) => Buffer,
  options: { name?: string; seen?: Set<ArrayBufferLike> } = {},
): FileTree {
  return {
    name: options.name ?? 'memtree',
    nodes,
    async *contents(): AsyncIterable<FileChunk> {
      for (let i = 0; i < nodes.length; i++) {
        const n = nodes[i]!;
        if (n.type !== 'file' || n.linkTo !== undefined) continue;
        for (const r of n.dataRanges ?? [{ offset: 0, length: n.size }]) {
          for (let at = r.offset; at < r.offset + r.length; at += MEM_TREE_CHUNK) {
            const data = bytes(n.path, at, Math.min(MEM_TREE_CHUNK, r.offset + r.length - at));
            options.seen?.add(data.buffer); // which buffers the writer got, to check it passes them through
            yield { node: i, offset: at, data };
          }
        }
      }
    },
    readFiles: async () => new Map(),
    close() {},
  };
}
