/**
 * Linux kernel modules for the initramfs: read a module's `.modinfo` ELF section (the
 * NUL-separated `key=value` strings modinfo prints; `depends=` lists the modules it needs) and
 * resolve a set of root modules to a load order, dependencies first, without `modules.dep`
 * (Debian's linux-image .deb does not ship it; its postinst runs depmod).
 *
 * Load order: depth-first, every module after all of its dependencies, no duplicates. A
 * module's dependencies are visited shallowest first (height = longest dependency chain below
 * it), ties broken by name, so the order does not depend on the order of `depends=` (which the
 * kernel build does not keep stable). For the Debian 12 cloud kernel and the roots
 * virtio_pci virtio_blk virtio_scsi ata_piix sd_mod this gives
 * virtio_pci_legacy_dev virtio_pci_modern_dev virtio_ring virtio virtio_pci virtio_blk
 * scsi_common scsi_mod virtio_scsi libata ata_piix sd_mod.
 *
 * busybox insmod loads plain ELF only: resolveModuleOrder refuses compressed modules (.ko.xz,
 * .ko.zst, .ko.gz) naming the compression; gatherModules (a ModuleSource: the cached default
 * modules or a rootfs's /lib/modules/RELEASE) decompresses them with the host's xz, zstd or gzip,
 * or refuses them naming the missing tool.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { RootView } from './tree.js';

/** Module names: '-' and '_' are equivalent; the canonical form uses '_'. */
export function normalizeModuleName(name: string): string {
  return moduleBaseName(name).replace(/-/g, '_');
}

/** "kernel/drivers/x/foo-bar.ko.xz" -> "foo-bar" (no normalisation). */
function moduleBaseName(name: string): string {
  return path.basename(name).replace(/\.ko(\.(xz|zst|gz))?$/, '');
}

export type ModuleCompression = 'none' | 'xz' | 'zst' | 'gz';

/** The compression of a module file, from its name. */
export function moduleCompression(file: string): ModuleCompression {
  const m = /\.ko\.(xz|zst|gz)$/.exec(file);
  return m ? (m[1] as ModuleCompression) : 'none';
}

/** Thrown for a compressed module (which needs decompressing before busybox insmod can load it). */
export class CompressedModuleError extends Error {
  constructor(
    readonly file: string,
    readonly compression: Exclude<ModuleCompression, 'none'>,
  ) {
    const tool = compression === 'xz' ? 'xz -d' : compression === 'zst' ? 'zstd -d' : 'gzip -d';
    super(
      `kernel module ${file} is ${compression}-compressed (.ko.${compression}); ` +
        `compressed modules are not supported (busybox insmod loads plain .ko files): decompress it first (${tool})`,
    );
    this.name = 'CompressedModuleError';
  }
}

/** Refuses a compressed module by its name or, failing that, by its magic bytes. */
function refuseCompressed(file: string, data?: Buffer): void {
  let c = moduleCompression(file);
  if (c === 'none' && data && data.length >= 6) {
    if (data[0] === 0xfd && data.subarray(1, 6).toString('latin1') === '7zXZ\0') c = 'xz';
    else if (data.readUInt32LE(0) === 0xfd2fb528) c = 'zst';
    else if (data[0] === 0x1f && data[1] === 0x8b) c = 'gz';
  }
  if (c !== 'none') throw new CompressedModuleError(file, c);
}

/** One `key=value` of a .modinfo section, in file order (keys such as alias= repeat). */
export interface ModinfoEntry {
  key: string;
  value: string;
}

/**
 * The contents of the `.modinfo` section of an ELF64 relocatable object (a .ko), found through
 * the section headers and the section-name string table. Throws for non-ELF64 input.
 */
export function modinfoSection(elf: Buffer, file = 'module'): Buffer {
  refuseCompressed(file, elf);
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file}: not an ELF file`);
  if (elf[4] !== 2) throw new Error(`${file}: not an ELF64 object (EI_CLASS ${elf[4]})`);
  const le = elf[5] === 1;
  if (!le && elf[5] !== 2) throw new Error(`${file}: bad ELF data encoding ${elf[5]}`);
  const u16 = (o: number) => (le ? elf.readUInt16LE(o) : elf.readUInt16BE(o));
  const u32 = (o: number) => (le ? elf.readUInt32LE(o) : elf.readUInt32BE(o));
  const u64 = (o: number) => Number(le ? elf.readBigUInt64LE(o) : elf.readBigUInt64BE(o));
  const shoff = u64(0x28);
  const shentsize = u16(0x3a);
  const shnum = u16(0x3c);
  const shstrndx = u16(0x3e);
  if (shoff === 0 || shnum === 0) throw new Error(`${file}: no ELF section headers`);
  if (shentsize < 64 || shoff + shnum * shentsize > elf.length) throw new Error(`${file}: ELF section headers out of range`);
  const section = (i: number) => {
    const h = shoff + i * shentsize;
    const offset = u64(h + 24);
    const size = u64(h + 32);
    const type = u32(h + 4);
    if (type !== 8 /* SHT_NOBITS */ && offset + size > elf.length) throw new Error(`${file}: ELF section ${i} out of range`);
    return { name: u32(h), type, offset, size };
  };
  if (shstrndx >= shnum) throw new Error(`${file}: bad ELF section-name table index`);
  const strtab = section(shstrndx);
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    const nameStart = strtab.offset + s.name;
    const nameEnd = elf.indexOf(0, nameStart);
    if (nameEnd < 0 || nameEnd > strtab.offset + strtab.size) continue;
    if (elf.toString('latin1', nameStart, nameEnd) === '.modinfo') return elf.subarray(s.offset, s.offset + s.size);
  }
  throw new Error(`${file}: no .modinfo section (not a kernel module?)`);
}

/** The `key=value` strings of a module's .modinfo section. */
export function readModinfo(elf: Buffer, file = 'module'): ModinfoEntry[] {
  const sec = modinfoSection(elf, file);
  const out: ModinfoEntry[] = [];
  for (const s of sec.toString('utf8').split('\0')) {
    if (s === '') continue;
    const eq = s.indexOf('=');
    if (eq < 0) continue;
    out.push({ key: s.slice(0, eq), value: s.slice(eq + 1) });
  }
  return out;
}

/** The (normalised) module names in `depends=` of a module image; [] when empty or absent. */
export function moduleDepends(elf: Buffer, file = 'module'): string[] {
  const dep = readModinfo(elf, file).find((e) => e.key === 'depends');
  if (!dep) return [];
  return dep.value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(normalizeModuleName);
}

/** Reads `depends=` of a module file (refusing compressed ones). */
export function moduleDependsOfFile(file: string): string[] {
  refuseCompressed(file);
  return moduleDepends(fs.readFileSync(file), file);
}

/**
 * Every module under `modulesDir` (recursively), normalised name -> path. Compressed modules are
 * indexed too (so that resolving one is refused with a clear message rather than "not found").
 */
export function indexModules(modulesDir: string): Map<string, string> {
  const index = new Map<string, string>();
  const walk = (dir: string) => {
    const names = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const d of names) {
      const p = path.join(dir, d.name);
      if (d.isDirectory()) walk(p);
      else if (/\.ko(\.(xz|zst|gz))?$/.test(d.name)) {
        const n = normalizeModuleName(d.name);
        if (!index.has(n)) index.set(n, p);
      }
    }
  };
  walk(modulesDir);
  return index;
}

export interface ResolvedModule {
  /** Normalised module name (with '_'). */
  name: string;
  path: string;
}

export interface ResolveOptions {
  /** Reads the dependencies of a module file; default: `depends=` of its .modinfo. */
  readDepends?: (file: string, name: string) => string[];
}

/**
 * Load order for `roots`: dependencies first, depth-first, no duplicates (see the file comment
 * for the tie-break). `lookup` maps a module name (any of '-'/'_' forms are tried) to its file.
 * Throws for an unknown module (naming who needs it), a dependency cycle, or a compressed module.
 */
export function resolveModuleOrder(
  roots: readonly string[],
  lookup: ReadonlyMap<string, string> | ((name: string) => string | undefined),
  options: ResolveOptions = {},
): ResolvedModule[] {
  const find = (name: string): string | undefined => {
    const n = normalizeModuleName(name);
    const candidates = [n, n.replace(/_/g, '-'), name];
    for (const c of candidates) {
      const p = typeof lookup === 'function' ? lookup(c) : lookup.get(c);
      if (p !== undefined) return p;
    }
    return undefined;
  };
  const readDepends = options.readDepends ?? ((file: string) => moduleDependsOfFile(file));

  const files = new Map<string, string>();
  const deps = new Map<string, string[]>();
  const load = (name: string, neededBy: string | undefined): void => {
    if (deps.has(name)) return;
    const file = find(name);
    if (file === undefined) {
      throw new Error(`kernel module ${name} not found${neededBy ? ` (needed by ${neededBy})` : ''}`);
    }
    refuseCompressed(file);
    files.set(name, file);
    const d = [...new Set(readDepends(file, name).map(normalizeModuleName))];
    deps.set(name, d);
    for (const x of d) load(x, name);
  };
  const rootNames = roots.map(normalizeModuleName);
  for (const r of rootNames) load(r, undefined);

  // Heights (longest chain below), with cycle detection.
  const height = new Map<string, number>();
  const computing = new Set<string>();
  const h = (name: string, chain: string[]): number => {
    const known = height.get(name);
    if (known !== undefined) return known;
    if (computing.has(name)) throw new Error(`kernel module dependency cycle: ${[...chain, name].join(' -> ')}`);
    computing.add(name);
    let v = 0;
    for (const d of deps.get(name) ?? []) v = Math.max(v, h(d, [...chain, name]) + 1);
    computing.delete(name);
    height.set(name, v);
    return v;
  };
  for (const r of rootNames) h(r, []);

  const order: ResolvedModule[] = [];
  const done = new Set<string>();
  const visit = (name: string): void => {
    if (done.has(name)) return;
    const d = [...(deps.get(name) ?? [])].sort((a, b) => (height.get(a)! - height.get(b)!) || (a < b ? -1 : a > b ? 1 : 0));
    for (const x of d) visit(x);
    done.add(name);
    order.push({ name, path: files.get(name)! });
  };
  for (const r of rootNames) visit(r);
  return order;
}

/** The modules the default initramfs loads: virtio (PCI, blk, scsi), PIIX IDE and SCSI disks. */
export const DEFAULT_ROOT_MODULES: readonly string[] = ['virtio_pci', 'virtio_blk', 'virtio_scsi', 'ata_piix', 'sd_mod'];

/**
 * Where a kernel's modules are read from: fsmaker's cached default modules (a host directory) or
 * a rootfs's /lib/modules/VERSION (through its RootView). `index` maps normalised names to paths
 * within the source; `read` returns the files' bytes as stored (maybe compressed).
 */
export interface ModuleSource {
  /** For messages and --print-config: "/lib/modules/6.1.0-50-cloud-amd64 in ROOT". */
  name: string;
  index: ReadonlyMap<string, string>;
  /** Names the kernel has built in (modules.builtin), or null when the file is absent. */
  builtin: ReadonlySet<string> | null;
  read(paths: readonly string[]): Promise<Map<string, Buffer>>;
}

/** The normalised names in a modules.builtin file ("kernel/fs/ext4/ext4.ko" lines). */
export function parseModulesBuiltin(text: string): Set<string> {
  return new Set(text.split('\n').map((l) => l.trim()).filter((l) => l !== '').map(normalizeModuleName));
}

/** Everything modules read in total, at most: the Debian kernel's whole driver set is 90 MB, an initramfs's a few. */
export const MODULE_READ_LIMIT = 64 * 1024 * 1024;

/** A module's ELF bytes: as stored, or decompressed by the host's xz/zstd/gzip (busybox insmod loads plain ELF only). */
export function decompressModule(file: string, stored: Buffer): Buffer {
  let c = moduleCompression(file);
  if (c === 'none') {
    if (stored[0] === 0xfd && stored.subarray(1, 6).toString('latin1') === '7zXZ\0') c = 'xz';
    else if (stored.length >= 4 && stored.readUInt32LE(0) === 0xfd2fb528) c = 'zst';
    else if (stored[0] === 0x1f && stored[1] === 0x8b) c = 'gz';
    else return stored;
  }
  const tool = c === 'xz' ? 'xz' : c === 'zst' ? 'zstd' : 'gzip';
  const r = spawnSync(tool, ['-dc'], { input: stored, maxBuffer: MODULE_READ_LIMIT });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(`kernel module ${file} is ${c}-compressed and ${missing ? `${tool} is not installed to decompress it (Debian package ${tool === 'zstd' ? 'zstd' : tool === 'xz' ? 'xz-utils' : 'gzip'})` : `${tool} failed: ${r.error.message}`}`);
  }
  if (r.status !== 0) throw new Error(`kernel module ${file}: ${tool} -d failed: ${r.stderr.toString().trim().split('\n')[0]}`);
  return r.stdout;
}

export interface GatheredModules {
  /** In load order, ELF bytes (decompressed). */
  modules: Array<{ name: string; data: Buffer }>;
  /** Roots the kernel has built in (nothing to load). */
  builtin: string[];
  /** Optional roots it has neither as a module nor built in. */
  absent: string[];
}

/**
 * The modules `roots` need from `source`, dependencies first (resolveModuleOrder's order), read
 * in rounds (a module's `depends=` is known once it is read), decompressed, bounded in total.
 * A root that is built in is left out; a required one that is neither there nor built in, or a
 * dependency that is missing, throws (an initramfs without the root's driver cannot boot).
 * `optional` roots (NIC drivers a kernel may not have) are skipped when absent.
 */
export async function gatherModules(source: ModuleSource, roots: readonly string[], optional: readonly string[] = []): Promise<GatheredModules> {
  const builtin: string[] = [];
  const absent: string[] = [];
  const wanted: string[] = [];
  for (const [list, required] of [[roots, true], [optional, false]] as const) {
    for (const r of list.map(normalizeModuleName)) {
      if (wanted.includes(r)) continue;
      if (source.index.has(r)) wanted.push(r);
      else if (source.builtin?.has(r)) builtin.push(r);
      else if (required) throw new Error(`kernel module ${r} is neither in ${source.name} nor built into the kernel${source.builtin ? '' : ' (no modules.builtin to tell)'}`);
      else absent.push(r);
    }
  }
  const data = new Map<string, Buffer>();
  const depends = new Map<string, string[]>();
  let total = 0;
  let round = wanted;
  while (round.length > 0) {
    const paths = round.map((n) => source.index.get(n)!);
    const read = await source.read(paths);
    const next: string[] = [];
    for (const [i, name] of round.entries()) {
      const stored = read.get(paths[i]!);
      if (!stored) throw new Error(`kernel module ${paths[i]} could not be read from ${source.name}`);
      const elf = decompressModule(paths[i]!, stored);
      total += elf.length;
      if (total > MODULE_READ_LIMIT) throw new Error(`the modules for ${roots.join(' ')} hold more than ${MODULE_READ_LIMIT} bytes in ${source.name}`);
      data.set(name, elf);
      const d = moduleDepends(elf, paths[i]!.replace(/\.(xz|zst|gz)$/, '')); // its ELF bytes, decompressed
      depends.set(name, d);
      for (const x of d) {
        if (data.has(x) || next.includes(x) || round.includes(x)) continue;
        if (!source.index.has(x)) {
          if (source.builtin?.has(x)) continue;
          throw new Error(`kernel module ${x} not found in ${source.name} (needed by ${name})`);
        }
        next.push(x);
      }
    }
    round = next;
  }
  const order = resolveModuleOrder(wanted, (n) => (data.has(n) ? n : undefined), { readDepends: (_file, name) => (depends.get(name) ?? []).filter((d) => data.has(d)) });
  return { modules: order.map((m) => ({ name: m.name, data: data.get(m.name)! })), builtin, absent };
}

/** The cached default modules (a host directory) as a ModuleSource. */
export function hostModuleSource(modulesDir: string): ModuleSource {
  let builtin: Set<string> | null = null;
  try {
    builtin = parseModulesBuiltin(fs.readFileSync(path.join(modulesDir, 'modules.builtin'), 'utf8'));
  } catch {
    // absent: nothing known to be built in
  }
  return {
    name: modulesDir,
    index: indexModules(modulesDir),
    builtin,
    read: async (paths) => new Map(paths.map((p) => [p, fs.readFileSync(p)])),
  };
}

/** The modules under `dir` in a rootfs (recursively, links not followed) as a ModuleSource. */
export function rootModuleSource(root: RootView, dir: string, builtinText: string | null): ModuleSource {
  const index = new Map<string, string>();
  const walk = (d: string, depth: number) => {
    if (depth > 16) return;
    for (const name of [...(root.list(d) ?? [])].sort()) {
      const p = `${d}/${name}`;
      const st = root.stat(p);
      if (st?.type === 'dir') walk(p, depth + 1);
      else if (st?.type === 'file' && /\.ko(\.(xz|zst|gz))?$/.test(name)) {
        const n = normalizeModuleName(name);
        if (!index.has(n)) index.set(n, p);
      }
    }
  };
  walk(dir, 0);
  return {
    name: `${dir} in ${root.name}`,
    index,
    builtin: builtinText === null ? null : parseModulesBuiltin(builtinText),
    read: (paths) => root.readFiles(paths, MODULE_READ_LIMIT),
  };
}
