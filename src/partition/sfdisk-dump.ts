/**
 * `sfdisk --dump` text (util-linux 2.38), printed from the shared partition-table model.
 *
 * What sfdisk prints, found by running it on many images and read in libfdisk's script.c:
 *
 *   label: gpt                       always
 *   label-id: 0x1234abcd | GUID      always (dos: "0x%08x"; gpt: upper-case GUID)
 *   device: /dev/sda                 the path as given on the command line
 *   unit: sectors                    always
 *   first-lba: 2048                  gpt only
 *   last-lba: 131038                 gpt only
 *   table-length: 8                  gpt only, when the entry array is not 128 entries long
 *   grain: 512                       when the device's alignment grain is not 1 MiB (bytes;
 *                                    tiny disks of at most 4 MiB get one physical sector)
 *   sector-size: 512                 always (2.38 prints it for 512-byte sectors too)
 *
 * then, only when there is at least one partition, a blank line and one line per partition in
 * number order:
 *
 *   /dev/sda1 : start=        2048, size=      204800, type=83, bootable
 *   /dev/loop0p2 : start=      206848, size=        2048, type=0FC63DAF-..., uuid=..., name="x", attrs="..."
 *
 * start= and size= are "%12ju" (right-aligned in 12 columns, longer numbers just widen); the
 * dos type is the type byte in lower-case hex without padding ("c", "83", "5"); gpt names are
 * quoted with every byte outside printable ASCII and each of `" \ $`` ` written as `\xHH`
 * (lower-case hex, UTF-8 bytes); gpt attrs are "RequiredPartition NoBlockIOProtocol
 * LegacyBIOSBootable GUID:48,49" (space separated, the GUID bits grouped). dos partitions never
 * show uuid/name/attrs, gpt partitions never show `bootable`.
 *
 * Pure: strings and model objects, no I/O.
 */
import type { Partition, PartitionTable } from './model.js';

export interface SfdiskFormatOptions {
  /**
   * The alignment grain (bytes) sfdisk sees on the device, for the "grain:" header. Default: what
   * libfdisk derives for an image file or a plain block device without an optimal I/O size,
   * see `sfdiskDefaultGrain`.
   */
  grain?: number;
}

const MIB = 1024 * 1024;

/**
 * libfdisk's default grain (topology_get_grain): 1 MiB, except that disks of at most four grains
 * (4 MiB) get one physical sector (assumed equal to the logical sector size).
 */
export function sfdiskDefaultGrain(sectorSize: number, diskSectors: number): number {
  return diskSectors <= (4 * MIB) / sectorSize ? sectorSize : MIB;
}

/**
 * libfdisk's fdisk_partname(): the device path plus the number, with "p" in between when the path
 * ends in a digit (/dev/loop0p1, /dev/nvme0n1p1, but /dev/sda1 and disk.img1). Paths ending in
 * "disc" (devfs) get "part"; /dev/disk/by-id/, /dev/disk/by-path/ and /dev/mapper/ names get
 * "-part" (libfdisk first looks for existing "<name>N" / "<name>pN" nodes there; this pure
 * function does not). An empty path gives just the number.
 */
export function sfdiskPartitionName(devicePath: string, number: number): string {
  if (devicePath === '') return String(number);
  let dev = devicePath;
  let sep = /[0-9]$/.test(dev) ? 'p' : '';
  if (dev.endsWith('disc')) {
    dev = dev.slice(0, -4);
    sep = 'part';
  }
  if (devicePath.startsWith('/dev/disk/by-id') || devicePath.startsWith('/dev/disk/by-path') || devicePath.startsWith('/dev/mapper')) {
    sep = '-part';
  }
  return `${dev}${sep}${number}`;
}

/**
 * sfdisk's attribute string (gpt_entry_attrs_to_string): bits 0, 1, 2 by name and bits 48-63 as
 * "GUID:48,50". Bits 3-47 are not shown at all, so a non-zero field made only of them gives "".
 * Returns undefined when the field is zero (no attrs= at all).
 */
export function formatGptAttributes(attributes: bigint | undefined): string | undefined {
  if (attributes === undefined || attributes === 0n) return undefined;
  const words: string[] = [];
  if (attributes & 1n) words.push('RequiredPartition');
  if (attributes & 2n) words.push('NoBlockIOProtocol');
  if (attributes & 4n) words.push('LegacyBIOSBootable');
  const guidBits: number[] = [];
  for (let bit = 48; bit < 64; bit++) if ((attributes >> BigInt(bit)) & 1n) guidBits.push(bit);
  if (guidBits.length > 0) words.push(`GUID:${guidBits.join(',')}`);
  return words.join(' ');
}

/**
 * The bytes libfdisk prints for a gpt name: each UTF-16 code unit encoded on its own as UTF-8
 * (ul_encode_to_utf8, so an unpaired surrogate becomes a 3-byte sequence), up to the first NUL.
 */
export function gptNameBytes(name: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0) break;
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    else out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
  }
  return out;
}

/** The name up to its first NUL: what libfdisk decodes from the entry. */
export function gptNameText(name: string): string {
  const nul = name.indexOf('\u0000');
  return nul < 0 ? name : name.slice(0, nul);
}

/**
 * fputs_quoted() as sfdisk runs it (C or C.UTF-8 locale, where bytes >= 0x80 are not printable):
 * double quotes around, and `"`, `\`, `` ` ``, `$`, control bytes and non-ASCII bytes as \xHH.
 */
export function sfdiskQuote(bytes: readonly number[]): string {
  let s = '"';
  for (const b of bytes) {
    if (b === 0x22 || b === 0x5c || b === 0x60 || b === 0x24 || b < 0x20 || b >= 0x7f) s += `\\x${b.toString(16).padStart(2, '0')}`;
    else s += String.fromCharCode(b);
  }
  return s + '"';
}

/** The dos type byte as sfdisk prints it ("%x"), from the model's hex string. */
export function sfdiskDosType(type: string): string {
  const t = type.trim().replace(/^0x/i, '');
  const code = Number.parseInt(t, 16);
  if (!/^[0-9a-f]+$/i.test(t) || !Number.isFinite(code)) throw new Error(`bad dos partition type: ${JSON.stringify(type)}`);
  return code.toString(16);
}

/** The dos disk signature as sfdisk prints it ("0x%08x"), from the model's string. */
export function sfdiskDosId(id: string): string {
  const m = /^(?:0x)?([0-9a-f]{1,8})$/i.exec(id.trim());
  return m ? `0x${(m[1] as string).toLowerCase().padStart(8, '0')}` : id;
}

/** One script header line (name: value), in sfdisk's order. */
export interface SfdiskHeader {
  name: string;
  value: string;
}

/** The header lines sfdisk generates for a table (fdisk_script_read_context), in order. */
export function sfdiskHeaders(table: PartitionTable, devicePath: string, options: SfdiskFormatOptions = {}): SfdiskHeader[] {
  const headers: SfdiskHeader[] = [{ name: 'label', value: table.label }];
  if (table.id !== undefined && table.id !== '') {
    headers.push({ name: 'label-id', value: table.label === 'gpt' ? table.id.toUpperCase() : sfdiskDosId(table.id) });
  }
  if (devicePath !== '') headers.push({ name: 'device', value: devicePath });
  headers.push({ name: 'unit', value: 'sectors' });
  if (table.label === 'gpt') {
    if (table.firstLba === undefined || table.lastLba === undefined) throw new Error('gpt table without firstLba/lastLba');
    headers.push({ name: 'first-lba', value: String(table.firstLba) });
    headers.push({ name: 'last-lba', value: String(table.lastLba) });
    const n = table.tableLength ?? 128;
    if (n !== 128) headers.push({ name: 'table-length', value: String(n) });
  }
  const grain = options.grain ?? sfdiskDefaultGrain(table.sectorSize, table.diskSectors);
  if (grain !== MIB) headers.push({ name: 'grain', value: String(grain) });
  headers.push({ name: 'sector-size', value: String(table.sectorSize) });
  return headers;
}

/** The partitions in number order, as libfdisk lists them. */
export function sfdiskOrder(table: PartitionTable): Partition[] {
  return [...table.partitions].sort((a, b) => a.number - b.number);
}

function pad12(n: number): string {
  return String(n).padStart(12, ' ');
}

/** One dump line for a partition (without the newline). */
export function formatSfdiskDumpLine(table: PartitionTable, p: Partition, devicePath: string): string {
  let line = devicePath !== '' ? `${sfdiskPartitionName(devicePath, p.number)} :` : `${p.number} :`;
  line += ` start=${pad12(p.start)}`;
  line += `, size=${pad12(p.size)}`;
  if (table.label === 'dos') {
    line += `, type=${sfdiskDosType(p.type)}`;
    if (p.bootable) line += ', bootable';
    return line;
  }
  line += `, type=${p.type.toUpperCase()}`;
  if (p.uuid !== undefined) line += `, uuid=${p.uuid.toUpperCase()}`;
  const name = p.name === undefined ? '' : gptNameText(p.name);
  if (name !== '') line += `, name=${sfdiskQuote(gptNameBytes(name))}`;
  const attrs = formatGptAttributes(p.attributes);
  if (attrs !== undefined) line += `, attrs="${attrs}"`;
  return line;
}

/** Exactly what `sfdisk -d DEVICE` prints for this table (util-linux 2.38). */
export function formatSfdiskDump(table: PartitionTable, devicePath: string, options: SfdiskFormatOptions = {}): string {
  let out = '';
  for (const h of sfdiskHeaders(table, devicePath, options)) out += `${h.name}: ${h.value}\n`;
  const parts = sfdiskOrder(table);
  if (parts.length === 0) return out;
  out += '\n';
  for (const p of parts) out += formatSfdiskDumpLine(table, p, devicePath) + '\n';
  return out;
}
