/**
 * Output formats: chosen by --format NAME or by the destination's extension, each declaring what
 * it needs so that a copy that cannot work is refused in one place, before anything is written,
 * with a message naming the format and the option. Pure: the sinks live in codec/ and sparsecopy/.
 */

import { VMDK_ADAPTER_TYPES, type VmdkAdapterType } from './vmdk-descriptor-text.js';
import { VMDK_SUBFORMATS, type VmdkSubformat } from './vmdk-writer.js';
import { OVF_DEFAULTS } from './ovf.js';

export type OutputFormatName = 'raw' | 'gzip' | 'xz' | 'zstd' | 'bzip2' | 'qcow2' | 'vmdk' | 'ova';

export interface OutputFormat {
  name: OutputFormatName;
  /** Destination extensions that choose it (lower case, with the dot). */
  extensions: readonly string[];
  /** What messages call it. */
  label: string;
  /** Compression levels it takes, and the default; null: none. */
  levels: { min: number; max: number; default: number } | null;
  needs: {
    /** Its bytes depend on every byte before them: extents must come in order, and a new file or a stream is written. */
    ordered: boolean;
    /** It must seek in its destination (qcow2; VMDK but streamOptimized). */
    seekable: boolean;
    /** It must know the exact size before the first byte (OVA's tar header, later). */
    sizeFirst: boolean;
  };
  /** A program it runs, and the Debian package that has it. */
  tool?: { command: string; debianPackage: string };
}

const compressed = { ordered: true, seekable: false, sizeFirst: false } as const;

export const OUTPUT_FORMATS: readonly OutputFormat[] = [
  { name: 'raw', extensions: [], label: 'raw', levels: null, needs: { ordered: false, seekable: false, sizeFirst: false } },
  { name: 'gzip', extensions: ['.gz'], label: 'gzip', levels: { min: 1, max: 9, default: 6 }, needs: compressed },
  { name: 'xz', extensions: ['.xz'], label: 'xz', levels: { min: 0, max: 9, default: 6 }, needs: compressed, tool: { command: 'xz', debianPackage: 'xz-utils' } },
  { name: 'zstd', extensions: ['.zst', '.zstd'], label: 'zstd', levels: { min: 1, max: 19, default: 3 }, needs: compressed },
  { name: 'bzip2', extensions: ['.bz2'], label: 'bzip2', levels: { min: 1, max: 9, default: 9 }, needs: compressed, tool: { command: 'lbzip2', debianPackage: 'lbzip2' } },
  // Written in one pass with its metadata last (codec/qcow2-sink.ts): a new regular file only.
  { name: 'qcow2', extensions: ['.qcow2'], label: 'qcow2', levels: null, needs: { ordered: true, seekable: true, sizeFirst: false } },
  // streamOptimized by default: one forward pass, a file or a stream; the other subformats seek (vmdkNeeds).
  { name: 'vmdk', extensions: ['.vmdk'], label: 'VMDK', levels: null, needs: { ordered: true, seekable: false, sizeFirst: false } },
  // A tar whose disk member's size comes first: the VMDK is spooled beside it (codec/ova-sink.ts), then a new file or a stream is written.
  { name: 'ova', extensions: ['.ova'], label: 'OVA', levels: null, needs: { ordered: true, seekable: false, sizeFirst: true } },
];

/** Extensions of formats people will expect to work and that sparsecopy cannot write (yet). */
const NOT_WRITTEN: Record<string, string> = {
  '.qcow': 'qcow',
  '.ovf': 'OVF',
  '.vhd': 'VHD',
  '.vpc': 'VHD',
  '.vhdx': 'VHDX',
  '.vdi': 'VDI',
  '.simg': 'Android sparse',
  '.lz4': 'lz4',
  '.lzma': 'lzma',
  '.zip': 'zip',
  '.dmg': 'DMG',
  '.tar': 'tar',
  '.tgz': 'tar.gz',
};

/** The refusal of an output the user asked for, or null. */
export class OutputFormatRefusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OutputFormatRefusal';
  }
}

export const outputFormatNamed = (name: string): OutputFormat | undefined => OUTPUT_FORMATS.find((f) => f.name === name || f.extensions.includes(`.${name}`));

/**
 * The format of `destination`: --format when given (it wins over the name), else the name's
 * extension (.gz, .xz, .zst, .bz2, .qcow2, .vmdk), else raw. With `raw` (--raw), the name decides nothing: the
 * bytes are written as they are. A known extension of a format not written is refused.
 */
export function chooseOutputFormat(destination: string, options: { format?: string; raw?: boolean }): OutputFormat {
  if (options.format !== undefined) {
    const chosen = outputFormatNamed(options.format.toLowerCase());
    if (!chosen) {
      const known = OUTPUT_FORMATS.map((f) => f.name).join(', ');
      throw new OutputFormatRefusal(`--format ${options.format}: not an output format written here (${known})`);
    }
    return chosen;
  }
  const raw = OUTPUT_FORMATS[0]!;
  if (options.raw || destination === '-') return raw;
  const lower = destination.toLowerCase();
  for (const f of OUTPUT_FORMATS) if (f.extensions.some((e) => lower.endsWith(e))) return f;
  const unsupported = Object.keys(NOT_WRITTEN).find((e) => lower.endsWith(e));
  if (unsupported) {
    throw new OutputFormatRefusal(
      `${destination}: a name for ${NOT_WRITTEN[unsupported]} output, which sparsecopy cannot write yet; nothing written (--format raw, or --raw, writes a raw image under that name)`,
    );
  }
  return raw;
}

/** A level for `format` from the user's text, or its default. */
export function levelFor(format: OutputFormat, text: string | undefined): number | null {
  if (!format.levels) {
    if (text !== undefined) throw new OutputFormatRefusal(`--level ${text}: ${format.label} output has no levels`);
    return null;
  }
  if (text === undefined) return format.levels.default;
  const level = Number(text);
  const { min, max } = format.levels;
  if (!Number.isInteger(level) || level < min || level > max) throw new OutputFormatRefusal(`bad ${format.label} level '${text}': expected ${min} to ${max}`);
  return level;
}

/**
 * The name md5sum should print for the digest of the uncompressed bytes: the destination without
 * its compressed format's extension, so that `md5sum -c` checks the image once it is unpacked.
 */
export function imageNameOf(destination: string, format: OutputFormat): string {
  if (!format.needs.ordered) return destination;
  const lower = destination.toLowerCase();
  const ext = format.extensions.find((e) => lower.endsWith(e));
  return ext ? destination.slice(0, destination.length - ext.length) : destination;
}

/** What --cluster-size and --compress ask of a qcow2 output: cluster_bits and whether clusters are deflated. */
export interface Qcow2OutputOptions {
  clusterBits: number;
  compress: boolean;
}

const QCOW2_DEFAULT_CLUSTER_BITS = 16; // 64 KiB, qemu's default
const QCOW2_MIN_CLUSTER_BYTES = 512;
const QCOW2_MAX_CLUSTER_BYTES = 2 << 20; // qemu's limit

/** qcow2's options from the user's (cluster size in bytes), or null for other formats, which refuse them. */
export function qcow2OptionsFor(format: OutputFormat, options: { clusterSize?: number; compress?: boolean; backing?: string }): Qcow2OutputOptions | null {
  if (format.name !== 'qcow2') {
    const given = options.clusterSize !== undefined ? '--cluster-size' : options.compress ? '--compress' : options.backing !== undefined ? '--backing' : null;
    if (given) throw new OutputFormatRefusal(`${given} is for qcow2 output, not ${format.label} (--format qcow2, or a .qcow2 destination)`);
    return null;
  }
  const size = options.clusterSize;
  if (size === undefined) return { clusterBits: QCOW2_DEFAULT_CLUSTER_BITS, compress: options.compress ?? false };
  const bits = Math.log2(size);
  if (!Number.isInteger(bits) || size < QCOW2_MIN_CLUSTER_BYTES || size > QCOW2_MAX_CLUSTER_BYTES) {
    throw new OutputFormatRefusal(`bad --cluster-size ${size} bytes: expected a power of two from ${QCOW2_MIN_CLUSTER_BYTES} bytes to 2 MiB`);
  }
  return { clusterBits: bits, compress: options.compress ?? false };
}

/** What --vmdk-subformat and --adapter-type ask of a VMDK output. */
export interface VmdkOutputOptions {
  subformat: VmdkSubformat;
  adapterType: VmdkAdapterType;
}

/** Every VMDK subformat but streamOptimized is written into new regular files, with seeks. */
export const vmdkNeeds = (vmdk: VmdkOutputOptions): OutputFormat['needs'] => ({ ordered: true, seekable: vmdk.subformat !== 'streamOptimized', sizeFirst: false });

/** The VMDK options from the user's (names as qemu-img spells them, in any case), or null for other formats, which refuse them. */
export function vmdkOptionsFor(format: OutputFormat, options: { vmdkSubformat?: string; adapterType?: string }): VmdkOutputOptions | null {
  if (format.name !== 'vmdk') {
    // An OVA's disk is a streamOptimized VMDK: its adapter type is asked for too (ovaOptionsFor).
    const given = options.vmdkSubformat !== undefined ? '--vmdk-subformat' : options.adapterType !== undefined && format.name !== 'ova' ? '--adapter-type' : null;
    const ova = given === '--adapter-type' ? '; an OVA takes it too' : '';
    if (given) throw new OutputFormatRefusal(`${given} is for VMDK output, not ${format.label} (--format vmdk, or a .vmdk destination${ova})`);
    return null;
  }
  const subformat = oneOf(options.vmdkSubformat ?? 'streamOptimized', VMDK_SUBFORMATS, '--vmdk-subformat');
  const adapterType = oneOf(options.adapterType ?? 'lsilogic', VMDK_ADAPTER_TYPES, '--adapter-type');
  return { subformat, adapterType };
}

function oneOf<T extends string>(text: string, values: readonly T[], option: string): T {
  const found = values.find((v) => v.toLowerCase() === text.toLowerCase());
  if (found === undefined) throw new OutputFormatRefusal(`bad ${option} '${text}': expected ${values.slice(0, -1).join(', ')} or ${values[values.length - 1]}`);
  return found;
}

/** What --ova-cpus, --ova-memory, --ova-hw-version, --adapter-type and fsmaker's firmware ask of an OVA. */
export interface OvaOutputOptions {
  cpus: number;
  memoryMiB: number;
  hardwareVersion: number;
  adapterType: VmdkAdapterType;
  firmware?: 'bios' | 'efi';
}

/** Upper bounds of what VMware hosts take (ESXi 8: 768 vCPUs, 24 TiB); vmx-4 is the oldest family. */
const OVA_MAX_CPUS = 768;
const OVA_MAX_MEMORY_MIB = 24 << 20;
const OVA_HW_VERSIONS = { min: 4, max: 99 } as const;

/** The OVA's options from the user's, or null for other formats, which refuse them (--adapter-type: vmdkOptionsFor). */
export function ovaOptionsFor(format: OutputFormat, options: { ovaCpus?: number; ovaMemoryMiB?: number; ovaHardwareVersion?: string; adapterType?: string; ovaFirmware?: 'bios' | 'efi' }): OvaOutputOptions | null {
  if (format.name !== 'ova') {
    const given = options.ovaCpus !== undefined ? '--ova-cpus' : options.ovaMemoryMiB !== undefined ? '--ova-memory' : options.ovaHardwareVersion !== undefined ? '--ova-hw-version' : null;
    if (given) throw new OutputFormatRefusal(`${given} is for OVA output, not ${format.label} (--format ova, or a .ova destination)`);
    return null;
  }
  const cpus = options.ovaCpus ?? OVF_DEFAULTS.cpus;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > OVA_MAX_CPUS) throw new OutputFormatRefusal(`bad --ova-cpus ${cpus}: expected 1 to ${OVA_MAX_CPUS}`);
  const memoryMiB = options.ovaMemoryMiB ?? OVF_DEFAULTS.memoryMiB;
  if (!Number.isInteger(memoryMiB) || memoryMiB < 1 || memoryMiB > OVA_MAX_MEMORY_MIB) throw new OutputFormatRefusal(`bad --ova-memory ${memoryMiB} MiB: expected a whole number of MiB from 1M to 24T`);
  const hw = options.ovaHardwareVersion;
  const hardwareVersion = hw === undefined ? OVF_DEFAULTS.hardwareVersion : /^(?:vmx-)?\d{1,2}$/.test(hw) ? Number(hw.replace('vmx-', '')) : NaN;
  if (!(hardwareVersion >= OVA_HW_VERSIONS.min && hardwareVersion <= OVA_HW_VERSIONS.max)) {
    throw new OutputFormatRefusal(`bad --ova-hw-version '${hw}': expected vmx-NN or NN, ${OVA_HW_VERSIONS.min} to ${OVA_HW_VERSIONS.max} (vmx-11, the default, imports on ESXi 6.0 and later)`);
  }
  const adapterType = oneOf(options.adapterType ?? OVF_DEFAULTS.adapterType, VMDK_ADAPTER_TYPES, '--adapter-type');
  return { cpus, memoryMiB, hardwareVersion, adapterType, ...(options.ovaFirmware ? { firmware: options.ovaFirmware } : {}) };
}
