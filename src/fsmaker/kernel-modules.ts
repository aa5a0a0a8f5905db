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
 * Compressed modules (.ko.xz, .ko.zst, .ko.gz) are refused with a message naming the
 * compression: busybox insmod loads plain ELF only.
 */
import fs from 'node:fs';
import path from 'node:path';

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
