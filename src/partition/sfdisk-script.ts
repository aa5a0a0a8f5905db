/**
 * sfdisk's script input (man sfdisk, "Input format"), parsed and laid out the way sfdisk 2.38
 * (libfdisk) lays it out on an empty disk: the result is the partition-table model sfdisk would
 * write, or the first error with its line number (sfdisk aborts the whole script on one).
 *
 * This is a port of the relevant parts of libfdisk (script.c, dos.c, gpt.c, alignment.c,
 * parttype.c, lib/strutils.c parse_size) and of sfdisk's command loop, checked against real
 * sfdisk runs (see test/partition-sfdisk-text.test.ts). The rules, briefly:
 *
 *  - Lines: blank lines and lines starting with '#' are skipped (but counted). While no
 *    partition has been read, a line with a ':' (not first), something after it and no '=' is a
 *    header: label, label-id, device, unit (only "sectors"), first-lba, last-lba, table-length,
 *    grain, sector-size; other names are ignored with a warning. A line with '=' is the named
 *    form (`[dev :] start=, size=, type=|Id=, uuid=, name=, attrs=, bootable`), anything else
 *    the positional form `start size type bootable` (separated by ',', ';' or blanks; an empty
 *    field, or '-' followed by a blank, means the default; bootable is '*', '+' or '-').
 *    Values may be "quoted" (a quote cannot be escaped: write \x22 in names). A line that does
 *    not parse but is one of sfdisk's commands: write/quit end the script, print/help are
 *    skipped, abort fails.
 *  - Numbers are C strtoumax base 0 (so 0x800 is hex and 010 octal) with an optional suffix
 *    K/M/G/T/P/E/Z/Y (or lower case) = 1024^n, KiB.. = 1024^n, KB.. = 1000^n, fractions like
 *    1.5M allowed. With a suffix the byte count is divided by the sector size, rounding down;
 *    without one it is sectors. A size given with a suffix is "not explicit" and its end gets
 *    aligned (see below); a size in sectors is taken exactly.
 *  - Alignment: the grain is 1 MiB (2048 sectors of 512 B, 256 of 4096 B; a "grain:" header
 *    overrides it; disks of at most 4 MiB get one sector). The first usable sector for dos is
 *    1 MiB (tiny disks: sector 1). A default start is the first free sector aligned up to the
 *    grain (gpt: the first sector of the largest free area, aligned). A suffixed size ending
 *    less than a grain away from its start is not aligned (dos then even gets one sector more:
 *    ",1000K" is 2001 sectors, libfdisk's quirk); longer ones end just before the nearest grain
 *    boundary. A default size runs to the end of the free area (dos: up to the disk's or the
 *    extended partition's end; gpt: up to last-lba, but the last partition's end is aligned
 *    down to the grain, minus one: 2048..129023 on a 64 MiB disk whose last-lba is 131038).
 *  - dos: lines fill primaries 1-4; a type 5/f/85 partition becomes the extended one. Once no
 *    primary slot or no space outside the extended partition is left, lines become logical
 *    partitions 5, 6, ... inside it, each preceded by a gap of the first usable sector (2048
 *    sectors of 512 B; not the grain) for its EBR, the first at extended start + 2048. A line
 *    named with a number >= 5 is logical, < 5 primary. When four primaries are used and none is
 *    extended, sfdisk stops reading ("All partitions used"; a warning here). A start given
 *    below 2048 switches libfdisk to first-usable-sector 1 for the rest. libfdisk's oddities
 *    are kept: a size larger than the free space gives a 0-sector partition at its end,
 *    32-bit wrap-around in entries. A second extended partition is laid out as sfdisk does,
 *    and reported as a departure (sfdisk writes it, then reads only the first one's EBR chain);
 *    name=, uuid=, attrs= on a dos line are ignored with a warning (sfdisk ignores them silently).
 *  - gpt: first-lba defaults to 1 MiB (2048 / 256 sectors; 34 on tiny disks), last-lba to
 *    disk - 2 - entry-array sectors (131038 for 64 MiB and 128 entries; table-length: 8 ->
 *    131068). The label-id and partition uuids come from the script or are left undefined for
 *    the caller to generate; an invalid label-id is ignored (sfdisk makes a random one), an
 *    invalid partition uuid is an error. Names are truncated to 36 UTF-16 code units, \xHH
 *    escapes are decoded; attrs take RequiredPartition, NoBlockIOProtocol, LegacyBIOSBootable,
 *    GUID:48..63 (or bare 48..63); an unparsable attrs string only warns (as sfdisk).
 *  - Types: aliases and shortcuts (dos: L linux 83, S swap 82, E/Ex extended 5, X linuxex 85,
 *    U uefi ef, R raid fd, V lvm 8e; gpt: L linux, S swap, H home, U uefi, R raid, V lvm), type
 *    names as `sfdisk -T` lists them (compared on letters and digits only, case-insensitively),
 *    then data: dos hex (83, 0x83; any value, stored as a byte; unparsable -> 0), gpt GUID
 *    (any case; must be a well-formed GUID).
 *
 * Errors in headers are reported at the header's line (sfdisk reports them when it applies the
 * headers, at the first partition line). The result is the table as `sfdisk -d` shows it after
 * writing (e.g. a 0-sector logical partition is dropped, as libfdisk's reader omits it).
 *
 * sfdisk's --append (and -N N for an unused N) is options.existing: the script is laid out around
 * the table on the disk. -N N for a used N reads one line (parseSfdiskPartitionLine; the move
 * and resize are edit-script.ts's).
 *
 * Not supported: sun/sgi/bsd labels; a device with I/O hints other than an optimal I/O size
 * (options.grain).
 *
 * Pure: strings and model objects, no I/O.
 */
import { logicalEbrLbas } from './align.js';
import { DOS_SHORTCUTS, GPT_SHORTCUTS } from './gpt-types.js';
import type { LabelType, Partition, PartitionTable } from './model.js';

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

export interface ScriptDisk {
  /** Logical sector size in bytes (512 or 4096). */
  sectorSize: number;
  /** Size of the disk in sectors. */
  diskSectors: number;
}

export interface ScriptOptions {
  /** Label when the script has no "label:" header (sfdisk: the disk's current label, else dos). */
  defaultLabel?: LabelType;
  /** The device's grain in bytes, when it is not libfdisk's default (1 MiB, one sector on tiny disks). */
  grain?: number;
  /**
   * sfdisk --append and -N N (N unused): the table on the disk, which the script's partitions are
   * added to (its label is used, headers create nothing). Its partitions come back unchanged.
   */
  existing?: PartitionTable;
  /** With `existing`, -N N: the script's partition line is partition N. */
  partno?: number;
}

/** A message tied to a script line (1-based, counting blank and comment lines too). */
export interface ScriptMessage {
  line: number;
  message: string;
}

/** The model sfdisk would write, except that ids it would generate at random are left undefined. */
export interface ScriptTable extends Omit<PartitionTable, 'id'> {
  /** dos "0x%08x" / gpt upper-case GUID from "label-id:", or undefined: the caller generates one. */
  id?: string;
}

export type ScriptResult =
  | {
      ok: true;
      table: ScriptTable;
      warnings: ScriptMessage[];
      headers: Record<string, string>;
      /**
       * Whether sfdisk would write anything: only a "label:" header or a partition line makes it
       * create a label. Empty input, blank lines, comments, other headers and commands alone leave
       * the disk as it is (sfdisk 2.38 then exits 0 without writing).
       */
      changesDisk: boolean;
      /**
       * What sfdisk accepts but cannot work: a second extended partition (sfdisk writes it, then
       * reads only the first one's EBR chain). The table above is still what sfdisk would write;
       * ptable refuses to write it.
       */
      departures: ScriptMessage[];
    }
  | { ok: false; error: ScriptMessage; warnings: ScriptMessage[] };

/** Parses an sfdisk script and lays it out as sfdisk 2.38 would on an empty disk of this size. */
export function parseSfdiskScript(text: string, disk: ScriptDisk, options: ScriptOptions = {}): ScriptResult {
  return new ScriptRun(text, disk, options).run();
}

/**
 * sfdisk's GPT attribute string to the 64-bit field (gpt_entry_attrs_from_string): names
 * RequiredPartition (also the typo RequiredPartiton), NoBlockIOProtocol, LegacyBIOSBootable, and
 * "GUID:<bit>" or "<bit>" for bits 48-63 (C base-0 numbers), separated by blanks or commas.
 * Returns an error string for anything else.
 */
export function parseGptAttributes(text: string): bigint | { error: string } {
  let p = 0;
  let attrs = 0n;
  const s = text;
  const at = (i: number): string => s[i] ?? '';
  while (p < s.length) {
    while (isBlank(at(p))) p++;
    if (p >= s.length) break;
    let bit = -1;
    const rest = s.slice(p);
    if (rest.startsWith('RequiredPartition')) {
      bit = 0;
      p += 'RequiredPartition'.length;
    } else if (rest.startsWith('RequiredPartiton')) {
      bit = 0;
      p += 'RequiredPartiton'.length;
    } else if (rest.startsWith('LegacyBIOSBootable')) {
      bit = 2;
      p += 'LegacyBIOSBootable'.length;
    } else if (rest.startsWith('NoBlockIOProtocol')) {
      bit = 1;
      p += 'NoBlockIOProtocol'.length;
    } else if (isDigit(at(p)) || (rest.startsWith('GUID:') && isDigit(at(p + 5)))) {
      if (at(p) === 'G') p += 5;
      const r = cStrtoInt(s, p, 0);
      const v = r.overflow ? -1n : r.value;
      if (r.end === p || v < 48n || v >= 64n) bit = -1;
      else {
        bit = Number(v);
        p = r.end;
      }
    }
    if (bit < 0) return { error: `unsupported GPT attribute bit '${s.slice(p)}'` };
    if (p < s.length && at(p) !== ',' && !isBlank(at(p))) return { error: `failed to parse GPT attribute string '${s}'` };
    attrs |= 1n << BigInt(bit);
    while (isBlank(at(p))) p++;
    if (at(p) === ',') p++;
  }
  return attrs;
}

/** A parsed partition type: dos type code (may exceed a byte, as typed) or gpt type string. */
export type ParsedType = { label: 'dos'; code: number } | { label: 'gpt'; typestr: string };

/**
 * A partition type as sfdisk reads it in scripts (fdisk_label_advparse_parttype with alias,
 * shortcut, name and data, data last; unknown values are accepted: dos code 0 or the hex value,
 * gpt the string itself, checked as a GUID when the partition is added).
 */
export function parseSfdiskPartitionType(label: LabelType, text: string): ParsedType {
  const cuts = label === 'dos' ? DOS_SHORTCUTS : GPT_SHORTCUTS;
  for (const c of cuts) if (c.alias === text) return typeFromData(label, c.data);
  for (const c of cuts) if (c.shortcut === text) return typeFromData(label, c.data);
  const names = label === 'dos' ? dosTypeNames() : gptTypeNames();
  for (const [data, name] of names) if (alnumCompare(name, text) === 0) return typeFromData(label, data);
  return typeFromData(label, text);
}

/** One partition line of a script, as sfdisk reads it for -N (nothing laid out yet). */
export type PartitionLine = Template;

/**
 * A single partition line (sfdisk -N's input): the fields it gives, the ones it leaves to the
 * current partition undefined, or the parser's error.
 */
export function parseSfdiskPartitionLine(text: string, label: LabelType, sectorSize: number): PartitionLine | { error: string } {
  const s = trimC(text);
  try {
    return s.includes('=') ? parseNameVal(s, 1, label, { ss: sectorSize, scriptSectorSize: 0 }) : parseValCommas(s, 1, label, { ss: sectorSize, scriptSectorSize: 0 });
  } catch (e) {
    if (e instanceof ParseError) return { error: e.message };
    throw e;
  }
}

/**
 * A GPT name as libfdisk stores a script's name= (\xHH escapes decoded, UTF-8 to at most 36
 * UTF-16 code units), or null when it is not UTF-8 of the BMP (libfdisk leaves it empty then).
 */
export function sfdiskGptName(text: string): string | null {
  const bytes = unhexmangle(utf8Bytes(text));
  return bytes.length === 0 ? '' : gptNameFromBytes(bytes);
}

/** sfdisk's size syntax (lib/strutils.c parse_size): value and the suffix power (0 = none). */
export function parseSfdiskSize(text: string): { value: bigint; power: number } | null {
  return parseSize(text);
}

// ---------------------------------------------------------------------------------------------
// C-like character helpers
// ---------------------------------------------------------------------------------------------

function isBlank(c: string): boolean {
  return c === ' ' || c === '\t';
}
function isSpace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';
}
function isDigit(c: string): boolean {
  return c.length === 1 && c >= '0' && c <= '9';
}
function isXDigit(c: string): boolean {
  return c.length === 1 && /[0-9a-fA-F]/.test(c);
}
function isAlnum(c: string): boolean {
  return c.length === 1 && /[0-9A-Za-z]/.test(c);
}
function skipBlank(s: string, i: number): number {
  while (i < s.length && isBlank(s[i] as string)) i++;
  return i;
}
function trimC(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isSpace(s[a] as string)) a++;
  while (b > a && isSpace(s[b - 1] as string)) b--;
  return s.slice(a, b);
}

const U64_MAX = (1n << 64n) - 1n;

/**
 * C strtoumax/strtol digits: whitespace, sign, base prefix (base 0 or 16), digits. Returns the
 * magnitude with the sign applied as a BigInt, the end index (== start when nothing converted)
 * and whether it overflowed 64 bits.
 */
function cStrtoInt(s: string, start: number, base: number): { value: bigint; end: number; overflow: boolean } {
  let i = start;
  while (i < s.length && isSpace(s[i] as string)) i++;
  let negative = false;
  if (s[i] === '+' || s[i] === '-') {
    negative = s[i] === '-';
    i++;
  }
  let b = base;
  if ((b === 0 || b === 16) && s[i] === '0' && (s[i + 1] === 'x' || s[i + 1] === 'X') && isXDigit(s[i + 2] ?? '')) {
    i += 2;
    b = 16;
  } else if (b === 0) b = s[i] === '0' ? 8 : 10;
  const digitsStart = i;
  let v = 0n;
  let overflow = false;
  for (; i < s.length; i++) {
    const d = Number.parseInt(s[i] as string, 36);
    if (Number.isNaN(d) || d >= b) break;
    v = v * BigInt(b) + BigInt(d);
    if (v > U64_MAX) overflow = true;
  }
  if (i === digitsStart) return { value: 0n, end: start, overflow: false };
  return { value: negative ? -v : v, end: i, overflow };
}

/** lib/strutils.c parse_size(), C locale (decimal point "."). */
function parseSize(str: string): { value: bigint; power: number } | null {
  if (str === '') return null;
  let p = 0;
  while (p < str.length && isSpace(str[p] as string)) p++;
  if (str[p] === '-') return null;
  const r = cStrtoInt(str, 0, 0);
  if (r.end === 0) return null;
  if (r.overflow) return null;
  let x = r.value;
  if (r.end >= str.length) return { value: x, power: 0 };
  p = r.end;
  const at = (i: number): string | undefined => str[i];
  let base = 1024n;
  let frac = 0n;
  let fracZeros = 0;
  for (;;) {
    // check_suffix:
    if (at(p + 1) === 'i' && (at(p + 2) === 'B' || at(p + 2) === 'b') && at(p + 3) === undefined) base = 1024n;
    else if ((at(p + 1) === 'B' || at(p + 1) === 'b') && at(p + 2) === undefined) base = 1000n;
    else if (at(p + 1) !== undefined) {
      if (frac === 0n && at(p) === '.') {
        let q = p + 1;
        while (at(q) === '0') {
          fracZeros++;
          q++;
        }
        let end: number;
        if (isDigit(at(q) ?? '')) {
          const f = cStrtoInt(str, q, 0);
          if (f.end === q || f.overflow) return null;
          frac = f.value;
          end = f.end;
        } else end = q;
        if (frac !== 0n && end >= str.length) return null;
        p = end;
        continue;
      }
      return null;
    }
    break;
  }
  const c = at(p) ?? '';
  let pwr = 'KMGTPEZY'.indexOf(c) + 1;
  if (pwr === 0) pwr = 'kmgtpezy'.indexOf(c) + 1;
  if (pwr === 0 || c === '') return null;
  for (let k = 0; k < pwr; k++) {
    x *= base;
    if (x > U64_MAX) return null;
  }
  if (frac !== 0n) {
    let fracDiv = 10n;
    let fracPoz = 1n;
    const fracBase = base ** BigInt(pwr);
    while (fracDiv < frac) {
      if (fracDiv <= U64_MAX / 10n) fracDiv *= 10n;
      else frac /= 10n;
    }
    for (let k = 0; k < fracZeros; k++) {
      if (fracDiv <= U64_MAX / 10n) fracDiv *= 10n;
      else frac /= 10n;
    }
    do {
      const seg = frac % 10n;
      const segDiv = fracDiv / fracPoz;
      frac /= 10n;
      fracPoz *= 10n;
      if (seg !== 0n && segDiv / seg !== 0n) x += fracBase / (segDiv / seg);
    } while (frac !== 0n);
  }
  return { value: x, power: pwr };
}

/** ul_stralnumcmp(): compares only letters and digits, case-insensitively. */
function alnumCompare(a: string, b: string): number {
  let i = 0;
  let j = 0;
  for (;;) {
    let c1 = '';
    let c2 = '';
    while (i < a.length) {
      const c = a[i++] as string;
      if (isAlnum(c)) {
        c1 = c.toLowerCase();
        break;
      }
    }
    while (j < b.length) {
      const c = b[j++] as string;
      if (isAlnum(c)) {
        c2 = c.toLowerCase();
        break;
      }
    }
    if (c1 === '' || c1 !== c2) return c1 === c2 ? 0 : c1 < c2 ? -1 : 1;
  }
}

/** libuuid's uuid_parse(): exactly 8-4-4-4-12 hex digits. Returns the upper-case form. */
function parseGuid(s: string): string | null {
  return /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(s) ? s.toUpperCase() : null;
}

function utf8Bytes(s: string): number[] {
  return [...Buffer.from(s, 'utf8')];
}

/** unhexmangle_string(): "\xHH" to the byte; the result ends at the first NUL. */
function unhexmangle(bytes: number[]): number[] {
  const out: number[] = [];
  const hex = (b: number | undefined): boolean => b !== undefined && isXDigit(String.fromCharCode(b));
  for (let i = 0; i < bytes.length; ) {
    if (bytes[i] === 0x5c && bytes[i + 1] === 0x78 && hex(bytes[i + 2]) && hex(bytes[i + 3])) {
      out.push(Number.parseInt(String.fromCharCode(bytes[i + 2] as number, bytes[i + 3] as number), 16));
      i += 4;
    } else out.push(bytes[i++] as number);
  }
  const nul = out.indexOf(0);
  return nul < 0 ? out : out.slice(0, nul);
}

/** gpt_entry_set_name(): libfdisk's own UTF-8 to UTF-16 (BMP only), 36 code units; null on EILSEQ. */
function gptNameFromBytes(bytes: number[]): string | null {
  const name = new Array<number>(36).fill(0);
  let i = 0;
  let mblen = 0;
  for (let k = 0; k < bytes.length && i < 36; k++) {
    const b = bytes[k] as number;
    if (b === 0) break;
    if (mblen === 0) {
      if (!(b & 0x80)) name[i++] = b;
      else if ((b & 0xe0) === 0xc0) {
        mblen = 1;
        name[i] = (b & 0x1f) << 6;
      } else if ((b & 0xf0) === 0xe0) {
        mblen = 2;
        name[i] = ((b & 0x0f) << 12) & 0xffff;
      } else return null;
    } else {
      if ((b & 0xc0) !== 0x80) return null;
      mblen--;
      name[i] = ((name[i] as number) | ((b & 0x3f) << (mblen * 6))) & 0xffff;
      if (mblen === 0) {
        if (((name[i] as number) & 0xf800) === 0xd800) return null;
        i++;
      }
    }
  }
  const end = name.indexOf(0);
  return String.fromCharCode(...(end < 0 ? name : name.slice(0, end)));
}

// ---------------------------------------------------------------------------------------------
// Tokenizer (script.c next_token, is_default_value)
// ---------------------------------------------------------------------------------------------

/** A cursor over one script line. */
interface Cursor {
  s: string;
  i: number;
}

/** next_token(): a blank/','/';'-terminated or "quoted" token; null when unterminated. */
function nextToken(cur: Cursor): string | null {
  const s = cur.s;
  let tkBegin = -1;
  let tkEnd = -1;
  let open = false;
  for (let p = cur.i; p < s.length; p++) {
    const c = s[p] as string;
    if (tkBegin < 0) {
      if (isBlank(c)) continue;
      tkBegin = c === '"' ? p + 1 : p;
    }
    if (c === '"') open = !open;
    if (open) continue;
    if (isBlank(c) || c === ',' || c === ';' || c === '"') tkEnd = p;
    else if (p + 1 === s.length) tkEnd = p + 1;
    if (tkBegin >= 0 && tkEnd >= 0) break;
  }
  if (tkEnd < 0) return null;
  let end = tkEnd;
  let terminated = false;
  if (s[end] === '"') end++;
  if (isBlank(s[end] ?? '')) {
    end = skipBlank(s, end);
    terminated = true;
  }
  if (s[end] === ',' || s[end] === ';') {
    end++;
    terminated = true;
  } else if (end >= s.length) terminated = true;
  if (!terminated) return null;
  end = skipBlank(s, end);
  cur.i = end;
  return s.slice(tkBegin, Math.max(tkBegin, tkEnd));
}

/** is_default_value(): "" or "," or ";" or "- " means the default; consumes the separator. */
function isDefaultValue(cur: Cursor): boolean {
  const s = cur.s;
  let p = skipBlank(s, cur.i);
  let blank = false;
  if (s[p] === '-') {
    const x = ++p;
    p = skipBlank(s, x);
    blank = x < p;
  }
  if (s[p] === ';' || s[p] === ',') {
    cur.i = p + 1;
    return true;
  }
  if (p >= s.length || blank) {
    cur.i = p;
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Partition templates (what one script line asks for)
// ---------------------------------------------------------------------------------------------

interface Template {
  line: number;
  /** 0-based partition number from "dev3 :", when given. */
  partno?: number;
  start?: number;
  startDefault: boolean;
  size?: number;
  endDefault: boolean;
  sizeExplicit: boolean;
  type?: ParsedType;
  uuid?: string;
  name?: string;
  attrs?: string;
  boot: boolean;
  /** Whether the line gave the bootable field ('-' clears it): -N keeps the flag otherwise. */
  bootGiven?: boolean;
  /** -N: a start written "+N"/"-N" moves the partition by N; "+" alone, to the free space before it. */
  move?: 'up' | 'down';
  /** -N: a size written "+N"/"-N" grows or shrinks by N; "+" alone, to all the free space after it. */
  resize?: 'enlarge' | 'reduce';
}

class ParseError extends Error {}

function typeFromData(label: LabelType, text: string): ParsedType {
  if (label === 'dos') {
    // strtol(str, &end, 16) must take the whole string and not overflow a long; else code 0
    const r = cStrtoInt(text, 0, 16);
    const long = r.value <= 0x7fffffffffffffffn && r.value >= -0x8000000000000000n && !r.overflow;
    if (text.slice(r.end) !== '' || !long) return { label: 'dos', code: 0 };
    return { label: 'dos', code: Number(BigInt.asUintN(32, r.value)) };
  }
  for (const [guid] of gptTypeNames()) if (guid.toLowerCase() === text.toLowerCase()) return { label: 'gpt', typestr: guid };
  return { label: 'gpt', typestr: text };
}

interface DeviceGeometry {
  ss: number;
  /** The script's "sector-size:", for recounting numbers given without a suffix. */
  scriptSectorSize: number;
}

/** recount_script2device_sectors(). */
function recount(geo: DeviceGeometry, num: bigint, what: string): bigint {
  const s = BigInt(geo.scriptSectorSize);
  const d = BigInt(geo.ss);
  if (!geo.scriptSectorSize || s === d) return num;
  if (s > d) return num * (s / d);
  const x = d / s;
  if (num % x !== 0n) throw new ParseError(`Can't recalculate partition ${what} to the device sectors`);
  return num / x;
}

function toSectors(v: bigint): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ParseError('number too large');
  return Number(v);
}

/**
 * A start or size field: empty or "+" means the default; otherwise a number of sectors, or a size
 * with a unit (converted to sectors). Returns null for the default.
 */
function parsePositionValue(cur: Cursor, geo: DeviceGeometry, what: 'start' | 'size'): { sectors: number; withUnit: boolean; sign: string } | 'default' | 'plus' {
  if (isDefaultValue(cur)) return 'default';
  const tk = nextToken(cur);
  if (tk === null) throw new ParseError(`bad ${what} value`);
  if (tk === '+') return 'plus';
  let q = skipBlank(tk, 0);
  const sign = tk[q] === '-' || tk[q] === '+' ? (tk[q] as string) : '';
  if (sign) q++;
  const r = parseSize(tk.slice(q));
  if (!r) throw new ParseError(`bad ${what} value '${tk}'`);
  if (r.power) return { sectors: toSectors(r.value / BigInt(geo.ss)), withUnit: true, sign };
  return { sectors: toSectors(recount(geo, r.value, what)), withUnit: false, sign };
}

/** parse_start_value(). */
function parseStart(cur: Cursor, t: Template, geo: DeviceGeometry): void {
  const v = parsePositionValue(cur, geo, 'start');
  t.startDefault = typeof v === 'string';
  if (v === 'plus') t.move = 'down';
  if (typeof v === 'string') return;
  t.start = v.sectors;
  if (v.sign) t.move = v.sign === '-' ? 'down' : 'up';
}

/** parse_size_value(). */
function parseSizeField(cur: Cursor, t: Template, geo: DeviceGeometry): void {
  const v = parsePositionValue(cur, geo, 'size');
  t.endDefault = typeof v === 'string';
  if (v === 'plus') t.resize = 'enlarge';
  if (typeof v === 'string') return;
  t.size = v.sectors;
  if (!v.withUnit) t.sizeExplicit = true;
  if (v.sign) t.resize = v.sign === '-' ? 'reduce' : 'enlarge';
}

/** partno_from_devname(): the trailing number of "dev3", 0-based; undefined when none. */
function partnoFromDevname(s: string): number | undefined {
  const t = s.replace(/[\t\n\v\f\r ]+$/, '');
  const m = /[0-9]+$/.exec(t);
  if (!m) return undefined;
  const n = Number(m[0]);
  if (!Number.isSafeInteger(n) || n > 0x7fffffff) return undefined;
  return n - 1 >= 0 ? n - 1 : undefined;
}

function newTemplate(line: number): Template {
  return { line, startDefault: true, endDefault: true, sizeExplicit: false, boot: false };
}

/** parse_line_nameval(): "[dev :] start=..., size=..., type=..., ...". */
function parseNameVal(s: string, line: number, label: LabelType, geo: DeviceGeometry): Template {
  const t = newTemplate(line);
  let body = s;
  const colon = s.indexOf(':');
  const eq = s.indexOf('=');
  if (colon >= 0 && (eq < 0 || colon < eq)) {
    const pno = partnoFromDevname(s.slice(0, colon));
    if (pno !== undefined) t.partno = pno;
    body = s.slice(colon + 1);
  }
  const cur: Cursor = { s: body, i: 0 };
  while (cur.i < body.length) {
    cur.i = skipBlank(body, cur.i);
    const rest = body.slice(cur.i).toLowerCase();
    if (rest.startsWith('start=')) {
      cur.i += 6;
      parseStart(cur, t, geo);
    } else if (rest.startsWith('size=')) {
      cur.i += 5;
      parseSizeField(cur, t, geo);
    } else if (rest.startsWith('bootable')) {
      const tk = nextToken(cur);
      if (tk !== null && tk.toLowerCase() === 'bootable') t.boot = t.bootGiven = true;
      else throw new ParseError('bad bootable field');
    } else if (rest.startsWith('attrs=')) {
      cur.i += 6;
      const tk = nextToken(cur);
      if (tk === null) throw new ParseError('bad attrs value');
      t.attrs = tk;
    } else if (rest.startsWith('uuid=')) {
      cur.i += 5;
      const tk = nextToken(cur);
      if (tk === null) throw new ParseError('bad uuid value');
      t.uuid = tk;
    } else if (rest.startsWith('name=')) {
      cur.i += 5;
      const tk = nextToken(cur);
      if (tk === null) throw new ParseError('bad name value');
      t.name = tk;
    } else if (rest.startsWith('type=') || rest.startsWith('id=')) {
      cur.i += rest.startsWith('id=') ? 3 : 5;
      const tk = nextToken(cur);
      if (tk === null) throw new ParseError('bad type value');
      t.type = parseSfdiskPartitionType(label, tk);
    } else {
      throw new ParseError(`unknown field '${body.slice(cur.i)}'`);
    }
  }
  return t;
}

/** parse_line_valcommas(): "start, size, type, bootable". */
function parseValCommas(s: string, line: number, label: LabelType, geo: DeviceGeometry): Template {
  const t = newTemplate(line);
  const cur: Cursor = { s, i: 0 };
  let item = -1;
  while (cur.i < s.length) {
    cur.i = skipBlank(s, cur.i);
    item++;
    const begin = cur.i;
    switch (item) {
      case 0:
        parseStart(cur, t, geo);
        break;
      case 1:
        parseSizeField(cur, t, geo);
        break;
      case 2: {
        delete t.type;
        const c = s[cur.i];
        if (c === ',' || c === ';' || isDefaultValue(cur)) break;
        const tk = nextToken(cur);
        if (tk === null) throw new ParseError('bad type value');
        t.type = parseSfdiskPartitionType(label, tk);
        break;
      }
      case 3: {
        const c = s[cur.i];
        if (c === ',' || c === ';') break;
        const tk = nextToken(cur);
        if (tk === '*' || tk === '+') t.boot = true;
        else if (tk === '-') t.boot = false;
        else throw new ParseError(`bad bootable value '${tk ?? ''}'`);
        t.bootGiven = true;
        break;
      }
      default:
        break;
    }
    if (begin === cur.i) cur.i++;
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// The disk context: alignment (alignment.c)
// ---------------------------------------------------------------------------------------------

class AddError extends Error {}

interface Align {
  ss: number;
  /** Grain in bytes. */
  grain: number;
  /** First usable sector as libfdisk's context sees it (topology; dos scripts may lower it to 1). */
  firstLba: number;
  total: number;
}

function grainSectors(a: Align): number {
  return Math.floor(a.grain / a.ss);
}

function alignmentRequired(a: Align): boolean {
  return a.grain !== a.ss;
}

function lbaIsAligned(a: Align, lba: number): boolean {
  const granularity = Math.max(a.ss, a.grain);
  return (BigInt(lba) * BigInt(a.ss)) % BigInt(granularity) === 0n;
}

const ALIGN_UP = 1;
const ALIGN_DOWN = 2;
const ALIGN_NEAREST = 3;

function alignLba(a: Align, lba: number, direction: number): number {
  if (lbaIsAligned(a, lba)) return lba;
  const g = grainSectors(a);
  if (lba < a.firstLba) return a.firstLba;
  if (direction === ALIGN_UP) return Math.floor((lba + g) / g) * g;
  if (direction === ALIGN_DOWN) return Math.floor(lba / g) * g;
  return Math.floor((lba + Math.floor(g / 2)) / g) * g;
}

/** fdisk_align_lba_in_range() as in util-linux 2.38 (areas smaller than a grain are left alone). */
function alignInRange(a: Align, lba: number, start: number, stop: number): number {
  const g = grainSectors(a);
  if (start + g <= stop) {
    start = alignLba(a, start, ALIGN_UP);
    stop = alignLba(a, stop, ALIGN_DOWN);
  }
  if (start + g > stop) return lba;
  lba = alignLba(a, lba, ALIGN_NEAREST);
  if (lba < start) return start;
  if (lba > stop) return stop;
  return lba;
}

// ---------------------------------------------------------------------------------------------
// dos (dos.c)
// ---------------------------------------------------------------------------------------------

interface DosPte {
  start: number;
  size: number;
  sys: number;
  boot: boolean;
  /** EBR sector for logical partitions, 0 for primaries. */
  offset: number;
  /** Logical partitions: the slot of the extended partition whose EBR chain holds them. */
  ext: number;
  line: number;
  /** A partition of the existing table (--append), returned as it was. */
  orig?: Partition;
}

const UINT_MAX = 0xffffffff;

function u32(x: number): number {
  return ((x % 0x100000000) + 0x100000000) % 0x100000000;
}

function isExtendedCode(code: number): boolean {
  return code === 0x05 || code === 0x0f || code === 0x85;
}

class DosLabel {
  /** Index = partno; primaries 0-3 (null when free), logical partitions from 4. */
  ptes: (DosPte | null)[] = [null, null, null, null];
  npartsMax = 4;
  extOffset = 0;
  extIndex = 0;
  /** Holds an existing table's partitions (--append): new logical partitions get their EBR's place. */
  seeded = false;

  constructor(private readonly a: Align) {}

  private pte(i: number): DosPte | null {
    return this.ptes[i] ?? null;
  }
  private absEnd(p: DosPte): number {
    return p.start + p.size - (p.size ? 1 : 0);
  }

  isUsed(i: number): boolean {
    return i < this.npartsMax && this.pte(i) !== null;
  }

  private diskRanges(logical: boolean): { first: number; last: number } {
    if (logical) {
      const ext = this.extOffset ? this.pte(this.extIndex) : null;
      if (!ext) throw new AddError('Invalid argument');
      return { first: this.extOffset + this.a.firstLba, last: this.absEnd(ext) };
    }
    return { first: this.a.firstLba, last: Math.min(this.a.total - 1, UINT_MAX) };
  }

  private usedArea(i: number): { pStart: number; pEnd: number } | null {
    const pe = this.pte(i);
    if (!pe) return null;
    let pStart = pe.start;
    const pEnd = this.absEnd(pe);
    if (pe.offset) pStart -= this.a.firstLba; // count the EBR gap as used
    return { pStart, pEnd };
  }

  private findLastFreeSectorInRange(logical: boolean, begin: number, end: number): number | null {
    let last = end;
    let moved: boolean;
    do {
      moved = false;
      for (let i = logical ? 4 : 0; i < this.npartsMax; i++) {
        const u = this.usedArea(i);
        if (!u) continue;
        if (last >= u.pStart && last <= u.pEnd) {
          last = u.pStart - 1;
          moved = true;
          if (last < begin) return null;
        }
      }
    } while (moved);
    return last;
  }

  private findFirstFreeSectorInRange(logical: boolean, begin: number, end: number): number | null {
    let first = begin;
    let moved: boolean;
    do {
      moved = false;
      for (let i = logical ? 4 : 0; i < this.npartsMax; i++) {
        const u = this.usedArea(i);
        if (!u) continue;
        if (first < u.pStart) continue;
        if (first <= u.pEnd) {
          first = u.pEnd + 1 + (logical ? this.a.firstLba : 0);
          moved = true;
          if (first > end) return null;
        }
      }
    } while (moved);
    return first;
  }

  private findFirstFreeSector(logical: boolean, start: number): number | null {
    const r = this.diskRanges(logical);
    return this.findFirstFreeSectorInRange(logical, start, r.last);
  }

  /** find_last_free(): the last free sector of the area starting at begin. */
  private findLastFree(logical: boolean, begin: number, stop: number): number | null {
    let last = stop;
    for (let i = logical ? 4 : 0; i < this.npartsMax; i++) {
      const u = this.usedArea(i);
      if (!u) continue;
      if ((u.pStart >= begin && u.pStart <= last) || (u.pEnd >= begin && u.pEnd <= last)) last = u.pStart - 1;
      if (last < begin) return null;
    }
    if (last === begin) last = stop;
    return last;
  }

  /** add_partition() for slot n (0-based). */
  private addPartition(n: number, pa: Template): void {
    const a = this.a;
    const sys = pa.type && pa.type.label === 'dos' ? pa.type.code : 0x83;
    const isLogical = n >= 4;
    if (this.pte(n)) throw new AddError(`Partition ${n + 1} is already defined.  Delete it before re-adding it.`);

    let { first: start, last: stop } = this.diskRanges(isLogical);
    let limit = this.findLastFreeSectorInRange(isLogical, start, stop);
    if (limit === null) throw new AddError('No free sectors available.');

    if (pa.start !== undefined && pa.start >= (isLogical ? this.extOffset : 1) && pa.start < start) {
      a.firstLba = 1;
      ({ first: start, last: stop } = this.diskRanges(isLogical));
    }

    let read = false;
    let temp: number;
    do {
      temp = start;
      let dflt = this.findFirstFreeSector(isLogical, start);
      if (dflt === null) throw new AddError('No free sectors available.');
      start = dflt;
      if (n >= 4 && pa.start !== undefined && a.firstLba > 1 && temp === start - a.firstLba) {
        a.firstLba = 1;
        start = pa.start;
      }
      // the default sector should be aligned and unused
      let aligned: number;
      do {
        aligned = alignInRange(a, dflt, dflt, limit);
        const f = this.findFirstFreeSector(isLogical, aligned);
        if (f !== null) dflt = f;
      } while (dflt !== aligned && dflt > aligned && dflt < limit);
      if (dflt >= limit) dflt = start;
      if (start > limit) break;
      if (start >= temp + 1 && read) {
        temp = start;
        read = false;
        if (pa.start !== undefined) break;
      }
      if (!read && start === temp) {
        if (pa.startDefault) start = dflt;
        else if (pa.start !== undefined) {
          start = pa.start;
          if (start < temp || start > limit) throw new AddError(`Start sector ${start} out of range.`);
        }
        read = true;
      }
      if (pa.size !== undefined) {
        const last = this.findLastFree(isLogical, start, limit);
        const span = last === null ? -1 : last - start + 1; // uint64 in C: negative is huge
        if (last !== null && span >= 0 && span < pa.size) {
          if (pa.start !== undefined && pa.start <= last) throw new AddError('No free sectors available.');
          start = last + 1;
          continue;
        }
        if (last === null) throw new AddError('No free sectors available.');
      }
    } while (start !== temp || !read);

    let offset = 0;
    if (n === 4) offset = this.extOffset;
    else if (n > 4) {
      offset = start - a.firstLba;
      if (offset === this.extOffset) {
        offset++;
        if (a.firstLba === 1) start++;
      }
    }

    const lastFree = this.findLastFree(isLogical, start, limit);
    if (lastFree === null) throw new AddError('No free sectors available.');
    limit = lastFree;
    stop = limit;
    let isrel = false;
    if (start === limit) stop = limit;
    else if (pa.endDefault) stop = limit;
    else if (pa.size !== undefined) {
      stop = start + pa.size;
      isrel = !pa.sizeExplicit;
      if ((!isrel || !alignmentRequired(a)) && stop > start) stop -= 1;
    }
    if (stop > limit) stop = limit;
    if (isrel && stop - start >= 0 && stop - start < grainSectors(a)) isrel = false; // tiny partitions are not aligned
    if (stop < limit && isrel && alignmentRequired(a)) {
      stop = alignInRange(a, stop, start, limit);
      if (stop > start) stop -= 1;
      if (stop > limit) stop = limit;
    }

    // the MBR/EBR entry holds 32-bit start (relative to its table) and size
    const rel = u32(start - offset);
    this.ptes[n] = { start: offset + rel, size: u32(stop - start + 1), sys, boot: pa.boot, offset, ext: this.extIndex, line: pa.line };
    if (isExtendedCode(sys)) {
      this.extIndex = n;
      this.extOffset = start;
    }
  }

  private addLogical(pa: Template): number {
    const n = this.npartsMax;
    this.ptes[n] = null;
    this.npartsMax++;
    try {
      this.addPartition(n, pa);
    } catch (e) {
      this.npartsMax--;
      this.ptes.length = n;
      throw e;
    }
    return n;
  }

  /** get_partition_unused_primary() + fdisk_partition_next_partno() with four slots. */
  private unusedPrimary(pa: Template): number {
    if (pa.partno === undefined) {
      for (let i = 0; i < 4; i++) if (!this.pte(i)) return i;
      throw new AddError('Primary partition not available.');
    }
    if (pa.partno >= 4) throw new AddError('Primary partition not available.');
    return pa.partno;
  }

  /** dos_add_partition(): returns the 0-based number of the new partition. */
  add(pa: Template): number {
    if (this.npartsMax >= 60) throw new AddError('The maximum number of partitions has been created.');
    const ext = this.extOffset ? this.pte(this.extIndex) : null;
    const typeIsExtended = pa.type !== undefined && pa.type.label === 'dos' && isExtendedCode(pa.type.code);

    if (pa.start !== undefined && ext && pa.start >= this.extOffset && pa.start <= this.absEnd(ext)) {
      if (pa.partno !== undefined && pa.partno < 4) throw new AddError('Invalid argument');
      return this.addLogical(pa);
    }
    if (pa.start !== undefined && ext) {
      if (pa.partno !== undefined && pa.partno >= 4) throw new AddError('Invalid argument');
      if (typeIsExtended) throw new AddError('Extended partition already exists.');
      const n = this.unusedPrimary(pa);
      this.addPartition(n, pa);
      return n;
    }
    if ((pa.startDefault || pa.start !== undefined) && pa.partno !== undefined && pa.partno < 4) {
      if (ext && typeIsExtended) throw new AddError('Extended partition already exists.');
      const n = this.unusedPrimary(pa);
      this.addPartition(n, pa);
      return n;
    }
    if ((pa.startDefault || pa.start !== undefined) && pa.partno !== undefined && pa.partno >= 4) {
      if (!ext) throw new AddError('Extended partition does not exists. Failed to add logical partition.');
      return this.addLogical(pa);
    }

    // "dialog driven" partitioning, scripts always answer "primary" when possible
    const grain = this.a.grain > this.a.ss ? grainSectors(this.a) : 1;
    let first = this.a.firstLba;
    let freePrimary = 0;
    let freeSectors = false;
    for (let i = 0; i < 4; i++) {
      const p = this.pte(i);
      if (p) {
        if (first + grain <= p.start) freeSectors = true;
        first = p.start + p.size;
      } else freePrimary++;
    }
    if (first + grain - 1 <= this.a.total - 1) freeSectors = true;
    if (!freePrimary || !freeSectors) {
      if (this.extOffset) {
        if (pa.start !== undefined) throw new AddError(!freePrimary ? 'All primary partitions are in use.' : 'All space for primary partitions is in use.');
        return this.addLogical(pa);
      }
      throw new AddError(
        freePrimary ? 'All space for primary partitions is in use.' : 'To create more partitions, first replace a primary with an extended partition.',
      );
    }
    const n = this.unusedPrimary(pa);
    this.addPartition(n, pa);
    return n;
  }

  /**
   * The partitions as sfdisk reads them back from the disk:
   *  - only the EBR chain of the first extended primary is read ("Ignoring extra extended
   *    partition"): logical partitions libfdisk put into another extended partition (a script
   *    with two of them) are not seen, nor any after them (the chain is broken there);
   *  - a logical partition with an extended type (5, f, 85) is read as a chain link: it and
   *    any after it are not seen;
   *  - a logical partition created with 0 sectors (default start past the end of a full
   *    extended partition) is dropped ("omitting empty partition"), later ones move down.
   */
  partitions(): Partition[] {
    const out: Partition[] = [];
    let firstExt = -1;
    for (let i = 0; i < 4; i++) {
      const p = this.pte(i);
      if (p && isExtendedCode(p.sys & 0xff)) {
        firstExt = i;
        break;
      }
    }
    let logical = 5;
    let chainOk = true;
    this.ptes.forEach((p, i) => {
      if (!p || i >= this.npartsMax) return;
      if (i >= 4) {
        // a logical partition of an extended type reads as a link, not as a partition
        if (!chainOk || p.ext !== firstExt || isExtendedCode(p.sys & 0xff)) {
          chainOk = false;
          return;
        }
        if (p.size === 0) return;
      }
      const number = i < 4 ? i + 1 : logical++;
      if (p.orig) out.push({ ...p.orig, number });
      else if (this.seeded && i >= 4) out.push({ number, start: p.start, size: p.size, type: (p.sys & 0xff).toString(16), bootable: p.boot, ebrLba: p.offset });
      else out.push({ number, start: p.start, size: p.size, type: (p.sys & 0xff).toString(16), bootable: p.boot });
    });
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// gpt (gpt.c)
// ---------------------------------------------------------------------------------------------

const ZERO_GUID = '00000000-0000-0000-0000-000000000000';
const GPT_LINUX = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';

interface GptEnt {
  start: number;
  end: number;
  type: string;
  uuid?: string;
  name?: string;
  attrs: bigint;
  line: number;
  /** A partition of the existing table (--append), returned as it was. */
  orig?: Partition;
}

class GptLabel {
  entries: (GptEnt | null)[];

  constructor(
    private readonly a: Align,
    readonly nents: number,
    readonly fu: number,
    readonly lu: number,
    private readonly warn: (m: ScriptMessage) => void,
  ) {
    this.entries = new Array<GptEnt | null>(nents).fill(null);
  }

  private used(e: GptEnt | null): e is GptEnt {
    return e !== null && e.type !== ZERO_GUID;
  }
  /** gpt_part_is_used(): a type, or at least a start. */
  isUsed(i: number): boolean {
    const e = this.entries[i] ?? null;
    return e !== null && (e.type !== ZERO_GUID || e.start !== 0);
  }

  private findFirstAvailable(start: number): number {
    let first = start < this.fu ? this.fu : start;
    let moved: boolean;
    do {
      moved = false;
      for (const e of this.entries) {
        if (!this.used(e)) continue;
        if (first < e.start) continue;
        if (first <= e.end) {
          first = e.end + 1;
          moved = true;
        }
      }
    } while (moved);
    return first > this.lu ? 0 : first;
  }

  private findLastFree(start: number): number {
    let nearest = this.lu;
    for (const e of this.entries) {
      const ps = e ? e.start : 0;
      if (nearest > ps && ps > start) nearest = ps - 1;
    }
    return nearest;
  }

  private findFirstInLargest(): number {
    let start = 0;
    let selectedSize = 0;
    let selected = 0;
    for (;;) {
      const first = this.findFirstAvailable(start);
      if (first === 0) break;
      const last = this.findLastFree(first);
      const size = last - first + 1;
      if (size > selectedSize) {
        selectedSize = size;
        selected = first;
      }
      start = last + 1;
    }
    return selected;
  }

  private freeSectors(): number {
    let start = 0;
    let total = 0;
    for (;;) {
      const first = this.findFirstAvailable(start);
      if (first === 0) break;
      const last = this.findLastFree(first);
      total += last - first + 1;
      start = last + 1;
    }
    return total;
  }

  /** gpt_add_partition(): returns the 0-based number of the new partition. */
  add(pa: Template): number {
    const a = this.a;
    let partnum: number;
    if (pa.partno === undefined) {
      partnum = -1;
      for (let i = 0; i < this.nents; i++) {
        if (!this.isUsed(i)) {
          partnum = i;
          break;
        }
      }
      if (partnum < 0) throw new AddError('Numerical result out of range');
    } else {
      if (pa.partno >= this.nents) throw new AddError('Numerical result out of range');
      partnum = pa.partno;
    }
    if (this.used(this.entries[partnum] ?? null)) throw new AddError(`Partition ${partnum + 1} is already defined.  Delete it before re-adding it.`);
    if (this.entries.filter((e) => this.used(e)).length === this.nents) throw new AddError('All partitions are already in use.');
    if (this.freeSectors() === 0) throw new AddError('No free sectors available.');

    const typestr = pa.type && pa.type.label === 'gpt' ? pa.type.typestr : GPT_LINUX;
    const type = parseGuid(typestr);
    if (type === null) throw new AddError(`failed to parse GUID: ${typestr}`);

    let dfltF = this.findFirstInLargest();
    let dfltL = this.findLastFree(dfltF);
    if (pa.start === undefined && dfltL - dfltF + 1 < grainSectors(a)) throw new AddError('No enough free sectors available.');
    dfltF = alignInRange(a, dfltF, dfltF, dfltL);

    let userF: number;
    if (pa.startDefault) userF = dfltF;
    else {
      const s = pa.start as number;
      if (s !== this.findFirstAvailable(s)) throw new AddError(`Sector ${s} already used.`);
      userF = s;
    }

    const maxL = this.findLastFree(userF);
    dfltL = maxL;
    // the last partition gets an aligned size by default
    if (maxL === this.lu) dfltL = alignInRange(a, maxL, userF, maxL) - 1;

    let userL: number;
    if (pa.endDefault) userL = dfltL;
    else {
      const size = pa.size as number;
      userL = userF + size - 1;
      const span = userL - userF; // uint64 in C: negative wraps to huge
      if (userL !== dfltL && !pa.sizeExplicit && alignmentRequired(a) && (span < 0 || span > grainSectors(a))) {
        userL = alignInRange(a, userL, userF, dfltL);
        if (userL > userF) userL -= 1;
      }
    }
    if (userF > userL || partnum >= this.nents) throw new AddError(`Could not create partition ${partnum + 1}`);
    if (userL > this.lu) throw new AddError(`The last usable GPT sector is ${this.lu}, but ${userL} is requested.`);
    if (userF < this.fu) throw new AddError(`The first usable GPT sector is ${this.fu}, but ${userF} is requested.`);

    let uuid: string | undefined;
    if (pa.uuid !== undefined) {
      const u = parseGuid(pa.uuid);
      if (u === null) throw new AddError(`failed to parse partition uuid '${pa.uuid}'`);
      uuid = u;
    }
    let name: string | undefined;
    if (pa.name !== undefined) {
      const bytes = unhexmangle(utf8Bytes(pa.name));
      if (bytes.length > 0) {
        const n = gptNameFromBytes(bytes);
        if (n === null) this.warn({ line: pa.line, message: 'partition name is not UTF-8 of the BMP; libfdisk leaves it empty' });
        else if (n !== '') name = n;
      }
    }
    let attrs = 0n;
    if (pa.attrs !== undefined) {
      const r = parseGptAttributes(pa.attrs);
      if (typeof r === 'bigint') attrs = r;
      else this.warn({ line: pa.line, message: r.error });
    }
    const ent: GptEnt = { start: userF, end: userL, type, attrs, line: pa.line };
    if (uuid !== undefined) ent.uuid = uuid;
    if (name !== undefined) ent.name = name;
    this.entries[partnum] = ent;
    return partnum;
  }

  /** check_overlap_partitions(), done by libfdisk before writing. */
  overlap(): ScriptMessage | null {
    for (let i = 0; i < this.nents; i++) {
      const a = this.entries[i];
      if (!a || !this.used(a)) continue;
      for (let j = i + 1; j < this.nents; j++) {
        const b = this.entries[j];
        if (!b || !this.used(b)) continue;
        if (a.start <= b.end && b.start <= a.end) {
          return { line: Math.max(a.line, b.line), message: `Partition ${i + 1} overlaps with partition ${j + 1}.` };
        }
      }
    }
    return null;
  }

  partitions(): Partition[] {
    const out: Partition[] = [];
    this.entries.forEach((e, i) => {
      if (!e || !this.isUsed(i)) return;
      if (e.orig) {
        out.push({ ...e.orig });
        return;
      }
      const p: Partition = { number: i + 1, start: e.start, size: e.end - e.start + 1, type: e.type, attributes: e.attrs };
      if (e.uuid !== undefined) p.uuid = e.uuid;
      if (e.name !== undefined) p.name = e.name;
      out.push(p);
    });
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// sfdisk's command loop
// ---------------------------------------------------------------------------------------------

const SUPPORTED_HEADERS = ['label', 'unit', 'label-id', 'device', 'grain', 'first-lba', 'last-lba', 'table-length', 'sector-size'];

class ScriptRun {
  private readonly warnings: ScriptMessage[] = [];
  private readonly departures: ScriptMessage[] = [];
  private readonly headers = new Map<string, { value: string; line: number }>();
  private readonly geo: DeviceGeometry;
  private readonly a: Align;
  private label: LabelType;
  private dos: DosLabel | null = null;
  private gpt: GptLabel | null = null;
  private labelId: string | undefined;
  private created = false;
  private sfUnused = false;
  private sfContainer = false;

  constructor(
    private readonly text: string,
    private readonly disk: ScriptDisk,
    private readonly options: ScriptOptions,
  ) {
    const ss = disk.sectorSize;
    this.geo = { ss, scriptSectorSize: 0 };
    const mib = 1024 * 1024;
    // topology_get_grain() / topology_get_first_lba() for a device without I/O hints (an
    // optimal I/O size above 1 MiB, passed as options.grain, moves both)
    const io = options.grain !== undefined && options.grain > mib ? options.grain : mib;
    const tiny = disk.diskSectors <= (4 * io) / ss;
    this.a = {
      ss,
      grain: tiny ? ss : options.grain ?? mib,
      firstLba: tiny ? 1 : Math.floor(io / ss),
      total: disk.diskSectors,
    };
    this.label = options.existing?.label ?? options.defaultLabel ?? 'dos';
    if (options.existing) this.seed(options.existing);
  }

  /** dos_read / gpt_read: the labels hold the existing table's partitions, as libfdisk's after reading the disk. */
  private seed(t: PartitionTable): void {
    if (t.id !== undefined) this.labelId = t.id;
    if (t.label === 'dos') {
      const dos = new DosLabel(this.a);
      dos.seeded = true;
      const ebrs = logicalEbrLbas(t);
      for (const p of t.partitions) {
        const sys = Number.parseInt(p.type, 16) & 0xff;
        const pte: DosPte = { start: p.start, size: p.size, sys, boot: p.bootable === true, offset: p.number >= 5 ? ebrs.get(p.number) ?? 0 : 0, ext: 0, line: 0, orig: p };
        dos.ptes[p.number - 1] = pte;
        if (p.number <= 4 && isExtendedCode(sys) && !dos.extOffset) {
          dos.extIndex = p.number - 1;
          dos.extOffset = p.start;
        }
      }
      for (let i = 0; i < dos.ptes.length; i++) if (dos.ptes[i] === undefined) dos.ptes[i] = null;
      for (const pte of dos.ptes) if (pte) pte.ext = dos.extIndex;
      dos.npartsMax = Math.max(4, dos.ptes.length);
      this.dos = dos;
    } else {
      const nents = t.tableLength ?? 128;
      const gpt = new GptLabel(this.a, nents, t.firstLba ?? 34, t.lastLba ?? t.diskSectors - 34, this.warn);
      for (const p of t.partitions) {
        const e: GptEnt = { start: p.start, end: p.start + p.size - 1, type: p.type, attrs: p.attributes ?? 0n, line: 0, orig: p };
        if (p.uuid !== undefined) e.uuid = p.uuid;
        gpt.entries[p.number - 1] = e;
      }
      this.gpt = gpt;
    }
    this.created = true;
  }

  private warn = (m: ScriptMessage): void => {
    this.warnings.push(m);
  };

  run(): ScriptResult {
    try {
      return this.loop();
    } catch (e) {
      if (e instanceof ScriptFailure) return { ok: false, error: e.where, warnings: this.warnings };
      throw e;
    }
  }

  private fail(line: number, message: string): never {
    throw new ScriptFailure({ line, message });
  }

  private safe(v: bigint, line: number): number {
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(line, 'number too large');
    return Number(v);
  }

  private npartitions(): number {
    return this.dos ? this.dos.npartsMax : this.gpt ? this.gpt.nents : 0;
  }

  /** has_container_or_unused(), with sfdisk's sticky flags. */
  private hasContainerOrUnused(): boolean {
    if (this.sfContainer || this.sfUnused) return true;
    const n = this.npartitions();
    for (let i = 0; i < n; i++) {
      const used = this.dos ? this.dos.isUsed(i) : (this.gpt as GptLabel).isUsed(i);
      if (!used) {
        this.sfUnused = true;
        continue;
      }
      if (this.dos && i < 4) {
        const p = this.dos.ptes[i];
        if (p && isExtendedCode(p.sys & 0xff)) this.sfContainer = true;
      }
    }
    return this.sfContainer || this.sfUnused;
  }

  /** One content line: a header, a partition template, or one of sfdisk's commands. */
  private readLine(s: string, line: number, nents: number): Template | 'header' | 'skip' | 'stop' {
    try {
      if (nents === 0 && isHeaderLine(s)) {
        this.parseHeader(s, line);
        return 'header';
      }
      return s.includes('=') ? parseNameVal(s, line, this.label, this.geo) : parseValCommas(s, line, this.label, this.geo);
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      // sfdisk then tries its own commands (the line as typed, trailing blank cut by the parser)
      const cmd = trimC(s);
      if (cmd === 'print' || cmd === 'help') return 'skip';
      if (cmd === 'write' || cmd === 'quit') return 'stop';
      if (cmd === 'abort') this.fail(line, 'aborted by the script');
      return this.fail(line, e.message);
    }
  }

  private loop(): ScriptResult {
    const lines = this.text.split('\n');
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    const content = (i: number): string | null => {
      let raw = lines[i] as string;
      if (raw.endsWith('\r')) raw = raw.slice(0, -1);
      const t = raw.slice(skipBlank(raw, 0));
      return t === '' || t.startsWith('#') ? null : t;
    };
    let lineNo = 0;
    let nents = 0; // partition lines read so far (sfdisk's script table)
    // sfdisk: --append continues after the last partition, -N N is partition N
    const existing = this.options.existing;
    let nextPartno = !existing ? -1 : this.options.partno !== undefined ? this.options.partno - 1 : Math.max(0, ...existing.partitions.map((p) => p.number));
    let stop: { line: number; why: string } | null = null;

    for (;;) {
      if (nextPartno === -1) nextPartno = nents;
      if (this.created && this.options.partno === undefined && nextPartno === this.npartitions() && !this.hasContainerOrUnused()) {
        stop = { line: lineNo, why: 'All partitions used' };
        break;
      }
      let s: string | null = null;
      while (s === null && lineNo < lines.length) s = content(lineNo++);
      if (s === null) break;

      const pa = this.readLine(s, lineNo, nents);
      if (pa === 'header' || pa === 'skip') continue;
      if (pa === 'stop') {
        stop = { line: lineNo, why: `"${trimC(s)}" command` };
        break;
      }
      nents++;
      if (pa.start === 0 && pa.size === 0) {
        this.warn({ line: lineNo, message: 'Ignoring partition.' });
        nextPartno++;
        continue;
      }
      if (!this.created) this.createLabel(lineNo);
      if (this.options.partno !== undefined) pa.partno = this.options.partno - 1;
      try {
        const cur = this.dos ? this.dos.add(pa) : (this.gpt as GptLabel).add(pa);
        nextPartno = cur + 1;
      } catch (e) {
        if (!(e instanceof AddError)) throw e;
        this.fail(lineNo, `Failed to add #${nextPartno + 1} partition: ${e.message}`);
      }
      if (this.dos) this.checkDosLine(pa, lineNo);
    }

    if (stop) {
      for (let i = stop.line; i < lines.length; i++) {
        if (content(i) !== null) {
          this.warn({ line: i + 1, message: `${stop.why}; this line and the rest of the script are ignored.` });
          break;
        }
      }
    }
    const changesDisk = this.created || this.header('label') !== undefined;
    if (!this.created) this.createLabel(lineNo);
    if (this.gpt) {
      const o = this.gpt.overlap();
      if (o) this.fail(o.line, o.message);
    }
    const headers = Object.fromEntries([...this.headers].map(([k, v]) => [k, v.value]));
    return { ok: true, table: this.table(), warnings: this.warnings, headers, changesDisk, departures: this.departures };
  }

  /**
   * What sfdisk accepts on a dos line but ptable does not take silently: gpt-only fields (sfdisk
   * ignores them without a word: a warning) and a second extended partition (a departure).
   */
  private checkDosLine(pa: Template, line: number): void {
    const dos = this.dos as DosLabel;
    const ignored = (['name', 'uuid', 'attrs'] as const).filter((f) => pa[f] !== undefined);
    if (ignored.length > 0) {
      this.warn({ line, message: `${ignored.map((f) => `${f}=`).join(', ')} ignored: a dos partition has no ${ignored.join(', ')} (sfdisk ignores it too)` });
    }
    const extended = [0, 1, 2, 3].filter((i) => {
      const p = dos.ptes[i];
      return p && i < dos.npartsMax && isExtendedCode(p.sys & 0xff);
    });
    if (extended.length > 1 && this.departures.length === 0) {
      this.departures.push({ line, message: `a second extended partition (${extended.map((i) => i + 1).join(' and ')}): only one can hold logical partitions` });
    }
  }

  /** parse_line_header(). */
  private parseHeader(s: string, line: number): void {
    const colon = s.indexOf(':');
    const name = trimC(s.slice(0, colon));
    const value = trimC(s.slice(colon + 1));
    if (name === '' || value === '') this.fail(line, `bad header line '${s}'`);
    if (!SUPPORTED_HEADERS.includes(name)) {
      this.warn({ line, message: `Unknown script header '${s}' -- ignore.` });
      return;
    }
    if (name === 'label') {
      const l = value.toLowerCase();
      const label = l === 'mbr' ? 'dos' : l;
      if (label === 'dos' || label === 'gpt') this.label = label;
      else if (label === 'sun' || label === 'sgi' || label === 'bsd') this.fail(line, `unsupported label '${value}' (only dos and gpt)`);
      else this.fail(line, `unknown label '${value}'`);
    } else if (name === 'sector-size') {
      if (!/^\s*\+?[0-9]+$/.test(value)) this.fail(line, `bad sector-size '${value}'`);
      const x = Number(value.trim());
      if (!Number.isSafeInteger(x) || x % 512 !== 0) this.fail(line, `bad sector-size '${value}'`);
      this.geo.scriptSectorSize = x;
      if (x !== 0 && x !== this.disk.sectorSize) {
        this.warn({ line, message: 'The script and device sector size differ; the sizes will be recalculated to match the device.' });
      }
    } else if (name === 'unit') {
      if (value !== 'sectors') this.fail(line, `unsupported unit '${value}' (only "sectors")`);
    }
    this.headers.set(name, { value, line });
  }

  private header(name: string): { value: string; line: number } | undefined {
    return this.headers.get(name);
  }

  /** fdisk_apply_script_headers() and the label's create(). */
  private createLabel(line: number): void {
    const a = this.a;
    const ss = this.disk.sectorSize;
    if (this.geo.scriptSectorSize && this.geo.scriptSectorSize !== ss) {
      for (const h of ['first-lba', 'last-lba']) {
        const v = this.header(h);
        if (v) {
          this.warn({ line: v.line, message: `Ignore "${h}" header due to sector size mismatch.` });
          this.headers.delete(h);
        }
      }
    }
    const grain = this.header('grain');
    if (grain) {
      const g = parseSize(grain.value);
      if (!g || g.value % 512n !== 0n) this.fail(grain.line, `bad grain '${grain.value}'`);
      const bytes = this.safe(g.value, grain.line);
      if (bytes !== 0) a.grain = bytes < ss ? ss : bytes; // 0: no user grain
    }
    const id = this.header('label-id');
    if (this.label === 'dos') {
      if (this.header('table-length')) this.fail((this.header('table-length') as { line: number }).line, 'table-length is a gpt header; sfdisk fails to apply it to a dos label');
      if (id) {
        const r = cStrtoInt(id.value, 0, 16);
        if (r.end > 0 && !r.overflow) this.labelId = `0x${BigInt.asUintN(32, r.value).toString(16).padStart(8, '0')}`;
        else this.warn({ line: id.line, message: `label-id '${id.value}' is not a number; sfdisk generates a random one` });
      }
      this.dos = new DosLabel(a);
    } else {
      const { nents, first, last } = this.gptRanges(line);
      if (id) {
        const g = parseGuid(id.value);
        if (g) this.labelId = g;
        else this.warn({ line: id.line, message: `label-id '${id.value}' is not a GUID; sfdisk generates a random one` });
      }
      this.gpt = new GptLabel(a, nents, first, last, this.warn);
    }
    this.created = true;
  }

  /** count_first_last_lba(). */
  private gptRanges(line: number): { nents: number; first: number; last: number } {
    const ss = this.disk.sectorSize;
    const total = this.disk.diskSectors;
    let nents = 128;
    const tl = this.header('table-length');
    if (tl) {
      const r = parseSize(tl.value);
      if (!r || r.power) this.fail(tl.line, `bad table-length '${tl.value}'`);
      nents = this.safe(r.value, tl.line);
      if (nents < 1 || nents > 0xffffffff / 128) this.fail(tl.line, `bad table-length '${tl.value}'`);
    }
    const wanted = nents;
    let flba = 0;
    let llba = 0;
    let ok = false;
    for (; nents > 0; nents--) {
      const esects = Math.ceil((nents * 128) / ss);
      if (total < 2 + esects) continue;
      llba = total - 2 - esects;
      flba = esects + 2;
      if (llba >= flba) {
        ok = true;
        break;
      }
    }
    if (!ok) this.fail(tl ? tl.line : line, 'Not enough space for new partition table!');
    if (tl && nents !== wanted) this.fail(tl.line, 'Not enough space for new partition table!');

    const scriptNumber = (h: string): { v: number; line: number } | undefined => {
      const x = this.header(h);
      if (!x) return undefined;
      const r = parseSize(x.value);
      if (!r) this.fail(x.line, `bad ${h} '${x.value}'`);
      return { v: this.safe(r.power ? r.value / BigInt(ss) : r.value, x.line), line: x.line };
    };
    let first = 0;
    let last = 0;
    const f = scriptNumber('first-lba');
    if (f) {
      first = f.v;
      if (first < flba || first > llba) this.fail(f.line, 'First LBA specified by script is out of range.');
    }
    const l = scriptNumber('last-lba');
    if (l) {
      last = l.v;
      if (last > llba || last < flba) this.fail(l.line, 'Last LBA specified by script is out of range.');
    }
    if (!last) last = llba;
    if (!first) first = flba < this.a.firstLba && this.a.firstLba < last ? this.a.firstLba : flba;
    return { nents, first, last };
  }

  private table(): ScriptTable {
    const base = { sectorSize: this.disk.sectorSize, diskSectors: this.disk.diskSectors };
    let t: ScriptTable;
    if (this.gpt) {
      t = {
        label: 'gpt',
        ...base,
        firstLba: this.gpt.fu,
        lastLba: this.gpt.lu,
        tableLength: this.gpt.nents,
        entriesLba: 2,
        partitions: this.gpt.partitions(),
      };
    } else {
      t = { label: 'dos', ...base, partitions: (this.dos as DosLabel).partitions() };
    }
    if (this.labelId !== undefined) t.id = this.labelId;
    // an existing table keeps its header fields (entries' place, table length, size)
    if (this.options.existing) return { ...this.options.existing, partitions: t.partitions };
    return t;
  }
}

class ScriptFailure extends Error {
  constructor(readonly where: ScriptMessage) {
    super(`line ${where.line}: ${where.message}`);
  }
}


/** is_header_line(): "name: value" with no '=' anywhere. */
export function isHeaderLine(s: string): boolean {
  const p = s.indexOf(':');
  return !(p < 0 || p === 0 || p + 1 >= s.length || s.includes('='));
}

// ---------------------------------------------------------------------------------------------
// Partition type tables (sfdisk -T, util-linux 2.38): shortcuts, aliases, names
// ---------------------------------------------------------------------------------------------


let dosNames: [string, string][] | null = null;
let gptNames: [string, string][] | null = null;

function splitTable(text: string): [string, string][] {
  return text
    .trim()
    .split('\n')
    .map((l) => {
      const sp = l.indexOf(' ');
      return [l.slice(0, sp), l.slice(sp + 1)] as [string, string];
    });
}

/** [hex code, name] in sfdisk's order. */
function dosTypeNames(): [string, string][] {
  dosNames ??= splitTable(DOS_TYPE_NAMES);
  return dosNames;
}

/** [GUID, name] in sfdisk's order. */
function gptTypeNames(): [string, string][] {
  gptNames ??= splitTable(GPT_TYPE_NAMES);
  return gptNames;
}

const DOS_TYPE_NAMES = `
0 Empty
1 FAT12
2 XENIX root
3 XENIX usr
4 FAT16 <32M
5 Extended
6 FAT16
7 HPFS/NTFS/exFAT
8 AIX
9 AIX bootable
a OS/2 Boot Manager
b W95 FAT32
c W95 FAT32 (LBA)
e W95 FAT16 (LBA)
f W95 Ext'd (LBA)
10 OPUS
11 Hidden FAT12
12 Compaq diagnostics
14 Hidden FAT16 <32M
16 Hidden FAT16
17 Hidden HPFS/NTFS
18 AST SmartSleep
1b Hidden W95 FAT32
1c Hidden W95 FAT32 (LBA)
1e Hidden W95 FAT16 (LBA)
24 NEC DOS
27 Hidden NTFS WinRE
39 Plan 9
3c PartitionMagic recovery
40 Venix 80286
41 PPC PReP Boot
42 SFS
4d QNX4.x
4e QNX4.x 2nd part
4f QNX4.x 3rd part
50 OnTrack DM
51 OnTrack DM6 Aux1
52 CP/M
53 OnTrack DM6 Aux3
54 OnTrackDM6
55 EZ-Drive
56 Golden Bow
5c Priam Edisk
61 SpeedStor
63 GNU HURD or SysV
64 Novell Netware 286
65 Novell Netware 386
70 DiskSecure Multi-Boot
75 PC/IX
80 Old Minix
81 Minix / old Linux
82 Linux swap / Solaris
83 Linux
84 OS/2 hidden or Intel hibernation
85 Linux extended
86 NTFS volume set
87 NTFS volume set
88 Linux plaintext
8e Linux LVM
93 Amoeba
94 Amoeba BBT
9f BSD/OS
a0 IBM Thinkpad hibernation
a5 FreeBSD
a6 OpenBSD
a7 NeXTSTEP
a8 Darwin UFS
a9 NetBSD
ab Darwin boot
af HFS / HFS+
b7 BSDI fs
b8 BSDI swap
bb Boot Wizard hidden
bc Acronis FAT32 LBA
be Solaris boot
bf Solaris
c1 DRDOS/sec (FAT-12)
c4 DRDOS/sec (FAT-16 < 32M)
c6 DRDOS/sec (FAT-16)
c7 Syrinx
da Non-FS data
db CP/M / CTOS / ...
de Dell Utility
df BootIt
e1 DOS access
e3 DOS R/O
e4 SpeedStor
ea Linux extended boot
eb BeOS fs
ee GPT
ef EFI (FAT-12/16/32)
f0 Linux/PA-RISC boot
f1 SpeedStor
f4 SpeedStor
f2 DOS secondary
f8 EBBR protective
fb VMware VMFS
fc VMware VMKCORE
fd Linux raid autodetect
fe LANstep
ff BBT
`;

const GPT_TYPE_NAMES = `
C12A7328-F81F-11D2-BA4B-00A0C93EC93B EFI System
024DEE41-33E7-11D3-9D69-0008C781F39F MBR partition scheme
D3BFE2DE-3DAF-11DF-BA40-E3A556D89593 Intel Fast Flash
21686148-6449-6E6F-744E-656564454649 BIOS boot
F4019732-066E-4E12-8273-346C5641494F Sony boot partition
BFBFAFE7-A34F-448A-9A5B-6213EB736C22 Lenovo boot partition
9E1A2D38-C612-4316-AA26-8B49521E5A8B PowerPC PReP boot
7412F7D5-A156-4B13-81DC-867174929325 ONIE boot
D4E6E2CD-4469-46F3-B5CB-1BFF57AFC149 ONIE config
E3C9E316-0B5C-4DB8-817D-F92DF00215AE Microsoft reserved
EBD0A0A2-B9E5-4433-87C0-68B6B72699C7 Microsoft basic data
5808C8AA-7E8F-42E0-85D2-E1E90434CFB3 Microsoft LDM metadata
AF9B60A0-1431-4F62-BC68-3311714A69AD Microsoft LDM data
DE94BBA4-06D1-4D40-A16A-BFD50179D6AC Windows recovery environment
37AFFC90-EF7D-4E96-91C3-2D7AE055B174 IBM General Parallel Fs
E75CAF8F-F680-4CEE-AFA3-B001E56EFC2D Microsoft Storage Spaces
75894C1E-3AEB-11D3-B7C1-7B03A0000000 HP-UX data
E2A1E728-32E3-11D6-A682-7B03A0000000 HP-UX service
0657FD6D-A4AB-43C4-84E5-0933C84B4F4F Linux swap
0FC63DAF-8483-4772-8E79-3D69D8477DE4 Linux filesystem
3B8F8425-20E0-4F3B-907F-1A25A76F98E8 Linux server data
44479540-F297-41B2-9AF7-D131D5F0458A Linux root (x86)
4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709 Linux root (x86-64)
6523F8AE-3EB1-4E2A-A05A-18B695AE656F Linux root (Alpha)
D27F46ED-2919-4CB8-BD25-9531F3C16534 Linux root (ARC)
69DAD710-2CE4-4E3C-B16C-21A1D49ABED3 Linux root (ARM)
B921B045-1DF0-41C3-AF44-4C6F280D3FAE Linux root (ARM-64)
993D8D3D-F80E-4225-855A-9DAF8ED7EA97 Linux root (IA-64)
77055800-792C-4F94-B39A-98C91B762BB6 Linux root (LoongArch-64)
37C58C8A-D913-4156-A25F-48B1B64E07F0 Linux root (MIPS-32 LE)
700BDA43-7A34-4507-B179-EEB93D7A7CA3 Linux root (MIPS-64 LE)
1DE3F1EF-FA98-47B5-8DCD-4A860A654D78 Linux root (PPC)
912ADE1D-A839-4913-8964-A10EEE08FBD2 Linux root (PPC64)
C31C45E6-3F39-412E-80FB-4809C4980599 Linux root (PPC64LE)
60D5A7FE-8E7D-435C-B714-3DD8162144E1 Linux root (RISC-V-32)
72EC70A6-CF74-40E6-BD49-4BDA08E8F224 Linux root (RISC-V-64)
08A7ACEA-624C-4A20-91E8-6E0FA67D23F9 Linux root (S390)
5EEAD9A9-FE09-4A1E-A1D7-520D00531306 Linux root (S390X)
C50CDD70-3862-4CC3-90E1-809A8C93EE2C Linux root (TILE-Gx)
8DA63339-0007-60C0-C436-083AC8230908 Linux reserved
933AC7E1-2EB4-4F13-B844-0E14E2AEF915 Linux home
A19D880F-05FC-4D3B-A006-743F0F84911E Linux RAID
E6D6D379-F507-44C2-A23C-238F2A3DF928 Linux LVM
4D21B016-B534-45C2-A9FB-5C16E091FD2D Linux variable data
7EC6F557-3BC5-4ACA-B293-16EF5DF639D1 Linux temporary data
75250D76-8CC6-458E-BD66-BD47CC81A812 Linux /usr (x86)
8484680C-9521-48C6-9C11-B0720656F69E Linux /usr (x86-64)
E18CF08C-33EC-4C0D-8246-C6C6FB3DA024 Linux /usr (Alpha)
7978A683-6316-4922-BBEE-38BFF5A2FECC Linux /usr (ARC)
7D0359A3-02B3-4F0A-865C-654403E70625 Linux /usr (ARM)
B0E01050-EE5F-4390-949A-9101B17104E9 Linux /usr (ARM-64)
4301D2A6-4E3B-4B2A-BB94-9E0B2C4225EA Linux /usr (IA-64)
E611C702-575C-4CBE-9A46-434FA0BF7E3F Linux /usr (LoongArch-64)
0F4868E9-9952-4706-979F-3ED3A473E947 Linux /usr (MIPS-32 LE)
C97C1F32-BA06-40B4-9F22-236061B08AA8 Linux /usr (MIPS-64 LE)
7D14FEC5-CC71-415D-9D6C-06BF0B3C3EAF Linux /usr (PPC)
2C9739E2-F068-46B3-9FD0-01C5A9AFBCCA Linux /usr (PPC64)
15BB03AF-77E7-4D4A-B12B-C0D084F7491C Linux /usr (PPC64LE)
B933FB22-5C3F-4F91-AF90-E2BB0FA50702 Linux /usr (RISC-V-32)
BEAEC34B-8442-439B-A40B-984381ED097D Linux /usr (RISC-V-64)
CD0F869B-D0FB-4CA0-B141-9EA87CC78D66 Linux /usr (S390)
8A4F5770-50AA-4ED3-874A-99B710DB6FEA Linux /usr (S390X)
55497029-C7C1-44CC-AA39-815ED1558630 Linux /usr (TILE-Gx)
D13C5D3B-B5D1-422A-B29F-9454FDC89D76 Linux root verity (x86)
2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5 Linux root verity (x86-64)
FC56D9E9-E6E5-4C06-BE32-E74407CE09A5 Linux root verity (Alpha)
24B2D975-0F97-4521-AFA1-CD531E421B8D Linux root verity (ARC)
7386CDF2-203C-47A9-A498-F2ECCE45A2D6 Linux root verity (ARM)
DF3300CE-D69F-4C92-978C-9BFB0F38D820 Linux root verity (ARM-64)
86ED10D5-B607-45BB-8957-D350F23D0571 Linux root verity (IA-64)
F3393B22-E9AF-4613-A948-9D3BFBD0C535 Linux root verity (LoongArch-64)
D7D150D2-2A04-4A33-8F12-16651205FF7B Linux root verity (MIPS-32 LE)
16B417F8-3E06-4F57-8DD2-9B5232F41AA6 Linux root verity (MIPS-64 LE)
98CFE649-1588-46DC-B2F0-ADD147424925 Linux root verity (PPC)
9225A9A3-3C19-4D89-B4F6-EEFF88F17631 Linux root verity (PPC64)
906BD944-4589-4AAE-A4E4-DD983917446A Linux root verity (PPC64LE)
AE0253BE-1167-4007-AC68-43926C14C5DE Linux root verity (RISC-V-32)
B6ED5582-440B-4209-B8DA-5FF7C419EA3D Linux root verity (RISC-V-64)
7AC63B47-B25C-463B-8DF8-B4A94E6C90E1 Linux root verity (S390)
B325BFBE-C7BE-4AB8-8357-139E652D2F6B Linux root verity (S390X)
966061EC-28E4-4B2E-B4A5-1F0A825A1D84 Linux root verity (TILE-Gx)
8F461B0D-14EE-4E81-9AA9-049B6FB97ABD Linux /usr verity (x86)
77FF5F63-E7B6-4633-ACF4-1565B864C0E6 Linux /usr verity (x86-64)
8CCE0D25-C0D0-4A44-BD87-46331BF1DF67 Linux /usr verity (Alpha)
FCA0598C-D880-4591-8C16-4EDA05C7347C Linux /usr verity (ARC)
C215D751-7BCD-4649-BE90-6627490A4C05 Linux /usr verity (ARM)
6E11A4E7-FBCA-4DED-B9E9-E1A512BB664E Linux /usr verity (ARM-64)
6A491E03-3BE7-4545-8E38-83320E0EA880 Linux /usr verity (IA-64)
F46B2C26-59AE-48F0-9106-C50ED47F673D Linux /usr verity (LoongArch-64)
46B98D8D-B55C-4E8F-AAB3-37FCA7F80752 Linux /usr verity (MIPS-32 LE)
3C3D61FE-B5F3-414D-BB71-8739A694A4EF Linux /usr verity (MIPS-64 LE)
DF765D00-270E-49E5-BC75-F47BB2118B09 Linux /usr verity (PPC)
BDB528A5-A259-475F-A87D-DA53FA736A07 Linux /usr verity (PPC64)
EE2B9983-21E8-4153-86D9-B6901A54D1CE Linux /usr verity (PPC64LE)
CB1EE4E3-8CD0-4136-A0A4-AA61A32E8730 Linux /usr verity (RISC-V-32)
8F1056BE-9B05-47C4-81D6-BE53128E5B54 Linux /usr verity (RISC-V-64)
B663C618-E7BC-4D6D-90AA-11B756BB1797 Linux /usr verity (S390)
31741CC4-1A2A-4111-A581-E00B447D2D06 Linux /usr verity (S390X)
2FB4BF56-07FA-42DA-8132-6B139F2026AE Linux /usr verity (TILE-Gx)
5996FC05-109C-48DE-808B-23FA0830B676 Linux root verity sign. (x86)
41092B05-9FC8-4523-994F-2DEF0408B176 Linux root verity sign. (x86-64)
D46495B7-A053-414F-80F7-700C99921EF8 Linux root verity sign. (Alpha)
143A70BA-CBD3-4F06-919F-6C05683A78BC Linux root verity sign. (ARC)
42B0455F-EB11-491D-98D3-56145BA9D037 Linux root verity sign. (ARM)
6DB69DE6-29F4-4758-A7A5-962190F00CE3 Linux root verity sign. (ARM-64)
E98B36EE-32BA-4882-9B12-0CE14655F46A Linux root verity sign. (IA-64)
5AFB67EB-ECC8-4F85-AE8E-AC1E7C50E7D0 Linux root verity sign. (LoongArch-64)
C919CC1F-4456-4EFF-918C-F75E94525CA5 Linux root verity sign. (MIPS-32 LE)
904E58EF-5C65-4A31-9C57-6AF5FC7C5DE7 Linux root verity sign. (MIPS-64 LE)
1B31B5AA-ADD9-463A-B2ED-BD467FC857E7 Linux root verity sign. (PPC)
F5E2C20C-45B2-4FFA-BCE9-2A60737E1AAF Linux root verity sign. (PPC64)
D4A236E7-E873-4C07-BF1D-BF6CF7F1C3C6 Linux root verity sign. (PPC64LE)
3A112A75-8729-4380-B4CF-764D79934448 Linux root verity sign. (RISC-V-32)
EFE0F087-EA8D-4469-821A-4C2A96A8386A Linux root verity sign. (RISC-V-64)
3482388E-4254-435A-A241-766A065F9960 Linux root verity sign. (S390)
C80187A5-73A3-491A-901A-017C3FA953E9 Linux root verity sign. (S390X)
B3671439-97B0-4A53-90F7-2D5A8F3AD47B Linux root verity sign. (TILE-Gx)
974A71C0-DE41-43C3-BE5D-5C5CCD1AD2C0 Linux /usr verity sign. (x86)
E7BB33FB-06CF-4E81-8273-E543B413E2E2 Linux /usr verity sign. (x86-64)
5C6E1C76-076A-457A-A0FE-F3B4CD21CE6E Linux /usr verity sign. (Alpha)
94F9A9A1-9971-427A-A400-50CB297F0F35 Linux /usr verity sign. (ARC)
D7FF812F-37D1-4902-A810-D76BA57B975A Linux /usr verity sign. (ARM)
C23CE4FF-44BD-4B00-B2D4-B41B3419E02A Linux /usr verity sign. (ARM-64)
8DE58BC2-2A43-460D-B14E-A76E4A17B47F Linux /usr verity sign. (IA-64)
B024F315-D330-444C-8461-44BBDE524E99 Linux /usr verity sign. (LoongArch-64)
3E23CA0B-A4BC-4B4E-8087-5AB6A26AA8A9 Linux /usr verity sign. (MIPS-32 LE)
F2C2C7EE-ADCC-4351-B5C6-EE9816B66E16 Linux /usr verity sign. (MIPS-64 LE)
7007891D-D371-4A80-86A4-5CB875B9302E Linux /usr verity sign. (PPC)
0B888863-D7F8-4D9E-9766-239FCE4D58AF Linux /usr verity sign. (PPC64)
C8BFBD1E-268E-4521-8BBA-BF314C399557 Linux /usr verity sign. (PPC64LE)
C3836A13-3137-45BA-B583-B16C50FE5EB4 Linux /usr verity sign. (RISC-V-32)
D2F9000A-7A18-453F-B5CD-4D32F77A7B32 Linux /usr verity sign. (RISC-V-64)
17440E4F-A8D0-467F-A46E-3912AE6EF2C5 Linux /usr verity sign. (S390)
3F324816-667B-46AE-86EE-9B0C0C6C11B4 Linux /usr verity sign. (S390X)
4EDE75E2-6CCC-4CC8-B9C7-70334B087510 Linux /usr verity sign. (TILE-Gx)
BC13C2FF-59E6-4262-A352-B275FD6F7172 Linux extended boot
773f91ef-66d4-49b5-bd83-d683bf40ad16  Linux user's home
516E7CB4-6ECF-11D6-8FF8-00022D09712B FreeBSD data
83BD6B9D-7F41-11DC-BE0B-001560B84F0F FreeBSD boot
516E7CB5-6ECF-11D6-8FF8-00022D09712B FreeBSD swap
516E7CB6-6ECF-11D6-8FF8-00022D09712B FreeBSD UFS
516E7CBA-6ECF-11D6-8FF8-00022D09712B FreeBSD ZFS
516E7CB8-6ECF-11D6-8FF8-00022D09712B FreeBSD Vinum
48465300-0000-11AA-AA11-00306543ECAC Apple HFS/HFS+
7C3457EF-0000-11AA-AA11-00306543ECAC Apple APFS
55465300-0000-11AA-AA11-00306543ECAC Apple UFS
52414944-0000-11AA-AA11-00306543ECAC Apple RAID
52414944-5F4F-11AA-AA11-00306543ECAC Apple RAID offline
426F6F74-0000-11AA-AA11-00306543ECAC Apple boot
4C616265-6C00-11AA-AA11-00306543ECAC Apple label
5265636F-7665-11AA-AA11-00306543ECAC Apple TV recovery
53746F72-6167-11AA-AA11-00306543ECAC Apple Core storage
69646961-6700-11AA-AA11-00306543ECAC Apple Silicon boot
52637672-7900-11AA-AA11-00306543ECAC Apple Silicon recovery
6A82CB45-1DD2-11B2-99A6-080020736631 Solaris boot
6A85CF4D-1DD2-11B2-99A6-080020736631 Solaris root
6A898CC3-1DD2-11B2-99A6-080020736631 Solaris /usr & Apple ZFS
6A87C46F-1DD2-11B2-99A6-080020736631 Solaris swap
6A8B642B-1DD2-11B2-99A6-080020736631 Solaris backup
6A8EF2E9-1DD2-11B2-99A6-080020736631 Solaris /var
6A90BA39-1DD2-11B2-99A6-080020736631 Solaris /home
6A9283A5-1DD2-11B2-99A6-080020736631 Solaris alternate sector
6A945A3B-1DD2-11B2-99A6-080020736631 Solaris reserved 1
6A9630D1-1DD2-11B2-99A6-080020736631 Solaris reserved 2
6A980767-1DD2-11B2-99A6-080020736631 Solaris reserved 3
6A96237F-1DD2-11B2-99A6-080020736631 Solaris reserved 4
6A8D2AC7-1DD2-11B2-99A6-080020736631 Solaris reserved 5
49F48D32-B10E-11DC-B99B-0019D1879648 NetBSD swap
49F48D5A-B10E-11DC-B99B-0019D1879648 NetBSD FFS
49F48D82-B10E-11DC-B99B-0019D1879648 NetBSD LFS
2DB519C4-B10F-11DC-B99B-0019D1879648 NetBSD concatenated
2DB519EC-B10F-11DC-B99B-0019D1879648 NetBSD encrypted
49F48DAA-B10E-11DC-B99B-0019D1879648 NetBSD RAID
FE3A2A5D-4F32-41A7-B725-ACCC3285A309 ChromeOS kernel
3CB8E202-3B7E-47DD-8A3C-7FF2A13CFCEC ChromeOS root fs
2E0A753D-9E48-43B0-8337-B15192CB1B5E ChromeOS reserved
85D5E45A-237C-11E1-B4B3-E89A8F7FC3A7 MidnightBSD data
85D5E45E-237C-11E1-B4B3-E89A8F7FC3A7 MidnightBSD boot
85D5E45B-237C-11E1-B4B3-E89A8F7FC3A7 MidnightBSD swap
0394EF8B-237E-11E1-B4B3-E89A8F7FC3A7 MidnightBSD UFS
85D5E45D-237C-11E1-B4B3-E89A8F7FC3A7 MidnightBSD ZFS
85D5E45C-237C-11E1-B4B3-E89A8F7FC3A7 MidnightBSD Vinum
45B0969E-9B03-4F30-B4C6-B4B80CEFF106 Ceph Journal
45B0969E-9B03-4F30-B4C6-5EC00CEFF106 Ceph Encrypted Journal
4FBD7E29-9D25-41B8-AFD0-062C0CEFF05D Ceph OSD
4FBD7E29-9D25-41B8-AFD0-5EC00CEFF05D Ceph crypt OSD
89C57F98-2FE5-4DC0-89C1-F3AD0CEFF2BE Ceph disk in creation
89C57F98-2FE5-4DC0-89C1-5EC00CEFF2BE Ceph crypt disk in creation
AA31E02A-400F-11DB-9590-000C2911D1B8 VMware VMFS
9D275380-40AD-11DB-BF97-000C2911D1B8 VMware Diagnostic
381CFCCC-7288-11E0-92EE-000C2911D0B2 VMware Virtual SAN
77719A0C-A4A0-11E3-A47E-000C29745A24 VMware Virsto
9198EFFC-31C0-11DB-8F78-000C2911D1B8 VMware Reserved
824CC7A0-36A8-11E3-890A-952519AD3F61 OpenBSD data
CEF5A9AD-73BC-4601-89F3-CDEEEEE321A1 QNX6 file system
C91818F9-8025-47AF-89D2-F030D7000C2C Plan 9 partition
5B193300-FC78-40CD-8002-E86C45580B47 HiFive FSBL
2E54B353-1271-4842-806F-E436D6AF6985 HiFive BBL
42465331-3BA3-10F1-802A-4861696B7521 Haiku BFS
6828311A-BA55-42A4-BCDE-A89BB5EDECAE Marvell Armada 3700 Boot partition
`;
