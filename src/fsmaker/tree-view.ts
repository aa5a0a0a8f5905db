/**
 * A FileTree seen as kernel discovery sees a root filesystem (RootView): absolute paths, entries
 * by path, directory listings, whole files read in one pass of the tree.
 */
import { ToolError } from '../errors.js';
import type { FileTree, RootView, TreeNode, TreeNodeType } from './tree.js';

/**
 * The regular files `paths` name (hard links resolved to the node whose bytes they share), by
 * path; paths that name nothing or something else are left out. Refuses more than `maxBytes` in
 * total before anything is read.
 */
export function filesToRead(name: string, nodes: readonly TreeNode[], paths: readonly string[], maxBytes: number): Map<string, TreeNode> {
  const byPath = new Map(nodes.map((n) => [n.path, n]));
  const out = new Map<string, TreeNode>();
  const counted = new Set<TreeNode>();
  let total = 0;
  for (const path of paths) {
    let node = byPath.get(path);
    if (node?.linkTo !== undefined) node = byPath.get(node.linkTo);
    if (!node || node.type !== 'file') continue;
    out.set(path, node);
    if (counted.has(node)) continue;
    counted.add(node);
    total += node.size;
    if (total > maxBytes) throw new ToolError('BOOT_FILE_UNUSABLE', `${name}: the files asked for (${paths.join(', ')}) hold more than ${maxBytes} bytes`);
  }
  return out;
}

const relative = (path: string): string => path.split('/').filter((p) => p !== '').join('/');

export function rootViewOfTree(tree: FileTree): RootView {
  const byPath = new Map<string, TreeNode>();
  const children = new Map<string, string[]>();
  for (const node of tree.nodes) {
    byPath.set(node.path, node);
    if (node.path === '') continue;
    const cut = node.path.lastIndexOf('/');
    const parent = cut < 0 ? '' : node.path.slice(0, cut);
    let list = children.get(parent);
    if (!list) children.set(parent, (list = []));
    list.push(node.path.slice(cut + 1));
  }
  return {
    name: tree.name,
    stat(path) {
      const node = byPath.get(relative(path));
      if (!node) return null;
      const type: TreeNodeType = node.type;
      const out: { type: TreeNodeType; size: number; target?: string } = { type, size: node.size };
      if (node.target !== undefined) out.target = node.target;
      return out;
    },
    list(path) {
      const p = relative(path);
      if (byPath.get(p)?.type !== 'dir') return null;
      return [...(children.get(p) ?? [])];
    },
    readFiles: async (paths, maxBytes) => {
      const byRelative = await tree.readFiles(paths.map(relative), maxBytes);
      const out = new Map<string, Buffer>();
      for (const p of paths) {
        const data = byRelative.get(relative(p));
        if (data) out.set(p, data);
      }
      return out;
    },
  };
}
