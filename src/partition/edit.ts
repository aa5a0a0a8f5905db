/**
 * sfdisk's one-attribute edits of a table already on the disk (--delete, --part-type,
 * --part-label, --part-uuid, --part-attrs, --disk-id, --activate, --reorder), as libfdisk 2.38
 * does them: each takes a table and returns a new one, or throws a ToolError whose message names
 * the partition (the command adds the disk's path). Pure: no I/O.
 *
 * What sfdisk refuses is refused here with its reason; what it accepts silently (a name given to a
 * dos partition, type 0) is accepted the same way, with the warning sfdisk prints returned.
 */
import { ToolError } from '../errors.js';
import { extendedPartition, isExtendedType } from './align.js';
import { isGuid, normalizeGuid } from './guid.js';
import { formatDiskId } from './mbr.js';
import type { Partition, PartitionTable } from './model.js';
import { formatGptAttributes } from './sfdisk-dump.js';
import { parseGptAttributes, parseSfdiskPartitionType } from './sfdisk-script.js';

export interface EditResult {
  table: PartitionTable;
  /** What sfdisk says about the change (its info lines), for the command to print. */
  notes: string[];
}

const copy = (table: PartitionTable, partitions: Partition[] = table.partitions): PartitionTable => ({
  ...table,
  partitions: partitions.map((p) => ({ ...p })),
});

/** Largest partition number sfdisk accepts for this table (its fdisk_get_npartitions). */
function partitionSlots(table: PartitionTable): number {
  if (table.label === 'gpt') return table.tableLength ?? 128;
  return Math.max(4, ...table.partitions.map((p) => p.number));
}

/** Partition `number` as sfdisk's assign_device_partition finds it, or its refusal. */
export function usedPartition(table: PartitionTable, number: number): Partition {
  if (!Number.isSafeInteger(number) || number < 1) throw new ToolError('USAGE', `bad partition number '${number}'`);
  const slots = partitionSlots(table);
  if (number > slots) throw new ToolError('PARTITION_MISSING', `partition ${number}: the table holds only ${slots} partitions`);
  const p = table.partitions.find((q) => q.number === number);
  if (!p) throw new ToolError('PARTITION_MISSING', `partition ${number}: partition is unused`);
  return p;
}

function withPartition(table: PartitionTable, number: number, change: (p: Partition) => Partition): PartitionTable {
  const target = usedPartition(table, number);
  return copy(table, table.partitions.map((p) => (p === target ? change({ ...p }) : p)));
}

/**
 * Deletes partitions one after the other, as `sfdisk --delete DISK N...` (all of them without
 * N). dos: deleting the extended partition deletes its logical partitions; deleting a logical one
 * renumbers those after it (so `--delete DISK 5 6` with two logical partitions fails at 6, as
 * sfdisk's), and when it was the first, the next one's EBR moves to the extended partition's start.
 * gpt: the entry is cleared, the other numbers stay.
 */
export function deletePartitions(table: PartitionTable, numbers?: readonly number[]): PartitionTable {
  if (numbers === undefined || numbers.length === 0) return copy(table, []);
  let t = copy(table);
  for (const n of numbers) {
    const p = t.partitions.find((q) => q.number === n);
    if (!p) throw new ToolError('PARTITION_MISSING', `partition ${n}: failed to delete (no such partition)`);
    t = deleteOne(t, p);
  }
  return t;
}

function deleteOne(table: PartitionTable, victim: Partition): PartitionTable {
  if (table.label === 'gpt' || victim.number < 5) {
    const extendedGone = table.label === 'dos' && isExtendedType(victim.type);
    return copy(
      table,
      table.partitions.filter((p) => p !== victim && !(extendedGone && p.number >= 5)),
    );
  }
  const ext = extendedPartition(table);
  const rest = table.partitions.filter((p) => p !== victim);
  const partitions = rest.map((p) => {
    if (p.number < victim.number) return { ...p };
    const moved: Partition = { ...p, number: p.number - 1 };
    // The first logical partition's EBR is the extended partition's first sector (libfdisk moves it).
    if (p.number === 6 && victim.number === 5 && ext) {
      moved.ebrLba = ext.start;
      delete moved.linkSectors;
    }
    return moved;
  });
  return copy(table, partitions);
}

/** sfdisk --part-type: the type as sfdisk's scripts spell it (alias, shortcut, name, hex or GUID). */
export function setPartitionType(table: PartitionTable, number: number, text: string): EditResult {
  const notes: string[] = [];
  const target = usedPartition(table, number);
  const parsed = parseSfdiskPartitionType(table.label, text);
  let type: string;
  if (parsed.label === 'gpt') {
    if (!isGuid(parsed.typestr)) throw new ToolError('USAGE', `partition ${number}: failed to set partition type: '${text}' is no type name or GUID`);
    type = normalizeGuid(parsed.typestr);
  } else {
    const code = parsed.code & 0xff;
    type = code.toString(16);
    const ext = extendedPartition(table);
    if (isExtendedType(type) && ext && ext.number !== number) throw new ToolError('USAGE', `partition ${number}: failed to set partition type: an extended partition already exists (${ext.number})`);
    if (ext?.number === number && !isExtendedType(type) && table.partitions.some((p) => p.number >= 5)) {
      throw new ToolError('USAGE', `partition ${number}: failed to set partition type: the extended partition holds logical partitions (delete them first)`);
    }
    if (number >= 5 && isExtendedType(type)) throw new ToolError('USAGE', `partition ${number}: failed to set partition type: a logical partition cannot be extended`);
    if (code === 0) notes.push('Type 0 means free space to many systems. Having partitions of type 0 is probably unwise.');
  }
  return { table: { ...withPartition(table, target.number, (p) => ({ ...p, type })) }, notes };
}

/** sfdisk --part-label: a GPT name (at most 36 UTF-16 code units, cut as libfdisk cuts). A dos partition has none: nothing changes, as sfdisk. */
export function setPartitionName(table: PartitionTable, number: number, name: string): EditResult {
  const target = usedPartition(table, number);
  if (table.label !== 'gpt') return { table: copy(table), notes: [] };
  const units = [...name].reduce<string[]>((acc, ch) => (acc.join('').length + ch.length <= 36 ? [...acc, ch] : acc), []).join('');
  return {
    table: withPartition(table, number, (p) => ({ ...p, name: units })),
    notes: [`Partition name changed from '${target.name ?? ''}' to '${units}'.`],
  };
}

/** sfdisk --part-uuid: GPT only. */
export function setPartitionUuid(table: PartitionTable, number: number, uuid: string): EditResult {
  const target = usedPartition(table, number);
  if (table.label !== 'gpt') throw new ToolError('USAGE', `partition ${number}: failed to set partition UUID: a dos partition has none`);
  if (!isGuid(uuid)) throw new ToolError('USAGE', `partition ${number}: failed to set partition UUID: '${uuid}' is not a UUID`);
  const next = normalizeGuid(uuid);
  return {
    table: withPartition(table, number, (p) => ({ ...p, uuid: next })),
    notes: [`Partition UUID changed from ${target.uuid ?? ''} to ${next}.`],
  };
}

/** sfdisk --part-attrs: GPT attribute names and bits 48-63 (sfdisk's syntax; an empty string clears them). */
export function setPartitionAttributes(table: PartitionTable, number: number, text: string): EditResult {
  usedPartition(table, number);
  if (table.label !== 'gpt') throw new ToolError('USAGE', `partition ${number}: failed to set partition attributes: a dos partition has none`);
  const attributes = parseGptAttributes(text);
  if (typeof attributes !== 'bigint') throw new ToolError('USAGE', `partition ${number}: failed to set partition attributes: ${attributes.error}`);
  return { table: withPartition(table, number, (p) => ({ ...p, attributes })), notes: [] };
}

/** sfdisk --disk-id: dos a 32-bit number (C base 0: 0x1234abcd, 01234, 1234), gpt a GUID. */
export function setDiskId(table: PartitionTable, text: string): EditResult {
  let id: string;
  if (table.label === 'gpt') {
    if (!isGuid(text)) throw new ToolError('USAGE', `failed to set disklabel ID: '${text}' is not a GUID`);
    id = normalizeGuid(text);
  } else {
    const value = cNumber(text);
    if (value === null || value > 0xffffffff) throw new ToolError('USAGE', `failed to set disklabel ID: '${text}' is not a 32-bit number`);
    id = formatDiskId(value);
  }
  return { table: { ...copy(table), id }, notes: [`Disk identifier changed from ${table.id.toLowerCase()} to ${id.toLowerCase()}.`] };
}

/** strtoul(text, &end, 0) taking the whole string, or null. */
function cNumber(text: string): number | null {
  const t = text.trim();
  let value: bigint;
  if (/^0[xX][0-9a-fA-F]+$/.test(t)) value = BigInt(t);
  else if (/^0[0-7]*$/.test(t)) value = BigInt(`0o${t.slice(1) || '0'}`);
  else if (/^[1-9][0-9]*$/.test(t)) value = BigInt(t);
  else return null;
  return value > 0xffffffffn ? Number.MAX_SAFE_INTEGER : Number(value);
}

/** The value `sfdisk --part-type/--part-label/--part-uuid/--part-attrs DISK N` prints. */
export function partitionValue(table: PartitionTable, number: number, what: 'type' | 'name' | 'uuid' | 'attrs'): string | null {
  const p = usedPartition(table, number);
  switch (what) {
    case 'type':
      // sfdisk prints a dos type with "%2x"
      return table.label === 'gpt' ? p.type.toUpperCase() : p.type.toLowerCase().padStart(2, ' ');
    case 'name':
      if (table.label !== 'gpt') throw new ToolError('USAGE', `partition ${number}: failed to get partition name: a dos partition has none`);
      return p.name ?? '';
    case 'uuid':
      if (table.label !== 'gpt') throw new ToolError('USAGE', `partition ${number}: failed to get partition UUID: a dos partition has none`);
      return p.uuid ?? '';
    case 'attrs':
      return table.label === 'gpt' ? formatGptAttributes(p.attributes) ?? '' : null;
  }
}

/**
 * sfdisk --activate DISK N...: every boot flag cleared, then each N's toggled (so naming a
 * partition twice leaves it off). A dos table only: on a GPT disk, sfdisk works on the protective
 * MBR (activateProtectiveMbr).
 */
export function activatePartitions(table: PartitionTable, numbers: readonly number[]): PartitionTable {
  if (table.label !== 'dos') throw new ToolError('USAGE', 'boot flags are for dos tables (a GPT disk: the protective MBR is changed instead)');
  const t = copy(table);
  for (const p of t.partitions) p.bootable = false;
  for (const n of numbers) {
    const p = t.partitions.find((q) => q.number === n);
    if (!p) throw new ToolError('PARTITION_MISSING', `partition ${n}: failed to toggle bootable flag (no such partition)`);
    p.bootable = !p.bootable;
  }
  return t;
}

/** Offset of the MBR entries in sector 0, and of the boot indicator in an entry. */
const MBR_ENTRIES_AT = 0x1be;
const ENTRY_BYTES = 16;

/**
 * `sfdisk --activate` on a GPT disk: libfdisk enters the protective MBR as a nested dos label and
 * sets the boot indicator of its entries (all cleared, then each N toggled, N from 1 to 4, empty or
 * not). Returns the new sector 0, or throws for an N past 4. Pure: sector in, sector out.
 */
export function activateProtectiveMbr(sector0: Buffer, numbers: readonly number[]): Buffer {
  const out = Buffer.from(sector0);
  for (let i = 0; i < 4; i++) out[MBR_ENTRIES_AT + i * ENTRY_BYTES] = 0;
  // libfdisk toggles an empty entry too (sfdisk 2.38.1 does: only 1-4 are checked)
  for (const n of numbers) {
    if (!Number.isInteger(n) || n < 1 || n > 4) throw new ToolError('PARTITION_MISSING', `partition ${n}: failed to toggle bootable flag (the protective MBR has entries 1-4)`);
    const at = MBR_ENTRIES_AT + (n - 1) * ENTRY_BYTES;
    out[at] = out[at] === 0x80 ? 0 : 0x80;
  }
  return out;
}

/** The protective MBR's bootable entries (1-4), as `sfdisk --activate DISK` lists them on a GPT disk. */
export function protectiveMbrBootable(sector0: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i < 4; i++) if (sector0[MBR_ENTRIES_AT + i * ENTRY_BYTES] === 0x80) out.push(i + 1);
  return out;
}

/**
 * sfdisk --reorder: partitions numbered in disk order. gpt: the used entries sorted by start and
 * packed from 1. dos: the used primaries swap slots until their starts increase (empty slots stay
 * empty); logical partitions out of order are not reordered here (libfdisk rewrites the EBR chain
 * then): refused. Returns null when the order is already right (sfdisk: "Nothing to do").
 */
export function reorderPartitions(table: PartitionTable): PartitionTable | null {
  const parts = [...table.partitions].sort((a, b) => a.number - b.number);
  if (table.label === 'gpt') {
    const slots = table.tableLength ?? 128;
    // libfdisk compares neighbouring entries, an empty entry sorting after every used one.
    const bySlot = new Map(parts.map((p) => [p.number, p]));
    let mess = false;
    for (let i = 1; i < slots && !mess; i++) {
      const a = bySlot.get(i);
      const b = bySlot.get(i + 1);
      if (b && (!a || a.start > b.start)) mess = true;
    }
    if (!mess) return null;
    const sorted = [...parts].sort((a, b) => a.start - b.start);
    return copy(table, sorted.map((p, i) => ({ ...p, number: i + 1 })));
  }
  const logicals = parts.filter((p) => p.number >= 5);
  if (logicals.some((p, i) => i > 0 && logicals[i - 1]!.start > p.start)) {
    throw new ToolError('REFUSED', 'reordering logical partitions (rewriting the EBR chain) is not supported; nothing written');
  }
  const primaries = parts.filter((p) => p.number <= 4);
  const numbers = primaries.map((p) => p.number);
  const sorted = [...primaries].sort((a, b) => a.start - b.start);
  if (sorted.every((p, i) => p === primaries[i])) return null;
  return copy(table, [...sorted.map((p, i) => ({ ...p, number: numbers[i]! })), ...logicals]);
}
