/**
 * sfdisk -N N: one script line applied to partition N of the table on the disk, as libfdisk 2.38
 * does it (fdisk_set_partition, recount_resize, the label's set_part). Empty fields keep the
 * current value; a start "+N"/"-N" moves the partition by N sectors (with a unit: by that much),
 * "+" alone to the start of the free space just before it; a size "+N"/"-N" grows or shrinks it
 * by N, "+" alone to the end of the free space after it; an absolute start keeps the size (the end
 * moves with it). The new place must lie in the partition itself or in free space next to it, as
 * libfdisk counts free space for a resize (sector granularity; for a logical partition, inside the
 * extended one and leaving each following EBR's gap): else "Failed to resize partition #N".
 *
 * Pure: tables and strings, no I/O.
 */
import { ToolError } from '../errors.js';
import { defaultFirstLba, extendedPartition, firstUsableLba, isExtendedType, lastUsableLba, logicalEbrLbas, partitionEnd, pinLogicalEbr } from './align.js';
import { isGuid, normalizeGuid, randomGuid } from './guid.js';
import type { Partition, PartitionTable } from './model.js';
import type { ScriptPlan } from './script-table.js';
import { isHeaderLine, parseGptAttributes, parseSfdiskPartitionLine, parseSfdiskScript, sfdiskGptName } from './sfdisk-script.js';

/** One area of libfdisk's resize table: a partition (the extended one included) or free space. */
interface Area {
  start: number;
  size: number;
  free: boolean;
  /** The partition's number (undefined for free space). */
  number?: number;
  /** A logical partition, or free space inside the extended partition. */
  nested: boolean;
  container: boolean;
}

/** The context's first and last LBA, as libfdisk's dos and gpt drivers set them. */
function contextLbas(table: PartitionTable): { first: number; last: number } {
  if (table.label === 'gpt') return { first: firstUsableLba(table), last: lastUsableLba(table) };
  return { first: defaultFirstLba(table.sectorSize, table.diskSectors), last: table.diskSectors - 1 };
}

/** new_freespace() with a one-sector grain: nothing for an area of one sector. */
function freeArea(start: number, end: number, nested: boolean): Area[] {
  if (start === end || end < start) return [];
  return [{ start, size: end - start + 1, free: true, nested, container: false }];
}

/**
 * fdisk_get_partitions + fdisk_get_freespaces as recount_resize calls them (grain one sector),
 * sorted by start. libfdisk's quirks are kept: free space inside the extended partition starts a
 * first-LBA gap after the previous logical partition and ends on the next one's first sector.
 */
function resizeAreas(table: PartitionTable): Area[] {
  const { first, last: lastLba } = contextLbas(table);
  const ext = extendedPartition(table);
  const parts: Area[] = table.partitions
    .filter((p) => p.size > 0)
    .map((p) => ({ start: p.start, size: p.size, free: false, number: p.number, nested: table.label === 'dos' && p.number >= 5, container: p === ext }));
  const frees: Area[] = [];
  const top = parts.filter((a) => !a.nested).sort((a, b) => a.start - b.start);
  let last = first;
  let count = 0;
  for (const pa of top) {
    if (last + 1 < pa.start || (count === 0 && last < pa.start)) frees.push(...freeArea(last + (count === 0 ? 0 : 1), pa.start - 1, false));
    if (pa.container) {
      let l = pa.start;
      for (const q of parts.filter((a) => a.nested).sort((a, b) => a.start - b.start)) {
        const from = l + first;
        if (q.start > from && q.start - from > 1) frees.push(...freeArea(from, q.start, true));
        l = q.start + q.size - 1;
      }
      const x = pa.start + pa.size - 1;
      const from = l + first;
      if (from < x && x - from > 1) frees.push(...freeArea(from, x, true));
    }
    last = Math.max(last, pa.start + pa.size - 1);
    count++;
  }
  if (last + 1 < lastLba - 1) frees.push(...freeArea(last + (last > first || count ? 1 : 0), lastLba, false));
  return [...parts, ...frees].sort((a, b) => a.start - b.start);
}

/** Whether `a` counts for `cur` (a logical partition sees only what is inside the extended one). */
const sameParent = (cur: Area, a: Area): boolean => !cur.nested || a.nested;

/** area_by_offset(). */
function areaAt(areas: Area[], cur: Area, lba: number): Area | undefined {
  return areas.find((a) => sameParent(cur, a) && lba >= a.start && lba < a.start + a.size);
}

/** resize_get_first_possible(): the start of the free space that runs up to `cur`. */
function firstPossible(areas: Area[], cur: Area): number | null {
  let first: Area | null = null;
  for (const a of areas) {
    if (a.start > cur.start || a === cur) break;
    if (!a.free || !sameParent(cur, a)) {
      first = null;
      continue;
    }
    if (a.start + a.size <= cur.start) first = a;
  }
  return first ? first.start : null;
}

/** resize_get_last_possible(): the largest size from `start` through `cur` and the free space after it. */
function lastPossible(areas: Area[], cur: Area, start: number): number | null {
  let last: Area | null = null;
  let max = 0;
  for (const a of areas) {
    if (a.container && a !== cur) continue;
    if (a.nested && cur.container) continue;
    if (!sameParent(cur, a)) continue;
    if (!last) {
      if (start >= a.start && start < a.start + a.size) {
        if (!a.free && a !== cur) break;
        last = a;
        max = a.size - (start - a.start);
      }
    } else if (!a.free && a !== cur) {
      break;
    } else {
      last = a;
      max = a.size - (start - a.start);
    }
  }
  return last ? max : null;
}

/** recount_resize(): the new start and size (size undefined: unchanged). */
function recountResize(table: PartitionTable, p: Partition, line: ReturnType<typeof asLine>): { start: number; size?: number } {
  const fail = (): never => {
    throw new ToolError('REFUSED', `Failed to resize partition #${p.number}: the new place is not inside it or the free space next to it; nothing written`);
  };
  const areas = resizeAreas(table);
  const cur = areas.find((a) => a.number === p.number);
  if (!cur) return fail();
  let start: number | undefined;
  if (line.move && line.start !== undefined) {
    if (line.move === 'down') {
      if (line.start > cur.start) fail();
      start = cur.start - line.start;
    } else start = cur.start + line.start;
  } else if (line.move === 'down') {
    start = firstPossible(areas, cur) ?? fail();
  } else if (line.start !== undefined) start = line.start;

  if (start !== undefined) {
    const area = areaAt(areas, cur, start);
    const { first } = contextLbas(table);
    const grain = defaultFirstLba(table.sectorSize, table.diskSectors);
    const beforeFirst = !area && start >= first && start < first + grain;
    if (!(area === cur || area?.free || beforeFirst)) fail();
  } else start = cur.start;

  let size: number | undefined;
  if (line.resize === 'reduce' && line.size !== undefined) {
    if (line.size > cur.size) fail();
    size = cur.size - line.size;
  } else if (line.resize === 'enlarge' && line.size !== undefined) size = cur.size + line.size;
  else if (line.resize === 'enlarge') size = lastPossible(areas, cur, start) ?? fail();
  else if (line.size !== undefined) size = line.size;

  const max = lastPossible(areas, cur, start);
  if (max === null || (size ?? cur.size) > max) fail();
  return size === undefined ? { start } : { start, size };
}

function asLine(table: PartitionTable, text: string, lineNumber = 1) {
  const line = parseSfdiskPartitionLine(text, table.label, table.sectorSize);
  if ('error' in line) throw new ToolError('SCRIPT', `script line ${lineNumber}: ${line.error}`);
  return line;
}

/**
 * `sfdisk -N number` with a script (its first partition line; blank, comment and header lines are
 * skipped, later lines ignored with a warning): partition `number` of `current` moved, resized or
 * retyped (the label's set_part rules: dos type changes to and from extended, gpt's usable range).
 * An unused `number` is added as partition `number` (appendFromScript), as sfdisk does. Returns
 * the new table, or throws a ToolError: SCRIPT for a line that does not parse, REFUSED for a
 * change that does not fit.
 */
export function editPartitionFromScript(current: PartitionTable, number: number, script: string): ScriptPlan {
  const p = current.partitions.find((q) => q.number === number);
  // sfdisk: "partition N is not defined yet": the line adds it as partition N
  if (!p) return appendFromScript(current, script.endsWith('\n') ? script : `${script}\n`, number);
  const warnings: string[] = [];
  // sfdisk applies the first partition line (headers before it are read and change nothing here)
  const lines = script.split('\n').map((l) => l.replace(/\r$/, '').trim()).map((l, i) => ({ l, i: i + 1 }));
  const content = lines.filter(({ l }) => l !== '' && !l.startsWith('#') && !isHeaderLine(l));
  const first = content[0];
  if (!first) return { table: { ...current, partitions: current.partitions.map((q) => ({ ...q })) }, warnings: ['no partition line: partition unchanged'] };
  for (const rest of content.slice(1)) warnings.push(`script line ${rest.i}: ignored (-N changes one partition, from the first partition line)`);
  const line = asLine(current, first.l, first.i);
  const next: Partition = pinLogicalEbr(current, p);
  if (line.start !== undefined || line.size !== undefined || line.move || line.resize) {
    const placed = recountResize(current, p, line);
    next.start = placed.start;
    if (placed.size !== undefined) next.size = placed.size;
  }
  if (current.label === 'dos') applyDosFields(current, p, next, line, warnings);
  else applyGptFields(current, next, line);
  if (next.ebrLba !== undefined && next.start <= next.ebrLba) {
    throw new ToolError('REFUSED', `Failed to resize partition #${number}: it would start at or before its EBR (LBA ${next.ebrLba}); nothing written`);
  }
  const partitions = current.partitions.map((q) => (q === p ? next : { ...q }));
  const table = { ...current, partitions };
  const clash = overlapAfterEdit(table, next);
  if (clash) throw new ToolError('REFUSED', `Failed to resize partition #${number}: it would ${clash} (sfdisk 2.38.1 writes that table, which its own -V rejects); nothing written`);
  return { table, warnings };
}

/**
 * What the edited partition would run into: libfdisk's free space inside an extended partition
 * ends on the next logical partition's first sector, so its resize can cover the next EBR and
 * that sector. Null when it stays clear of every other partition and EBR.
 */
function overlapAfterEdit(table: PartitionTable, edited: Partition): string | null {
  const logical = table.label === 'dos' && edited.number >= 5;
  const end = partitionEnd(edited);
  const ebrs = logical ? logicalEbrLbas(table) : new Map<number, number>();
  for (const q of table.partitions) {
    if (q.number === edited.number || q.size === 0) continue;
    if (table.label === 'dos' && (q.number >= 5) !== logical) continue;
    if (edited.start <= partitionEnd(q) && q.start <= end) return `overlap partition ${q.number}`;
    const ebr = ebrs.get(q.number);
    if (ebr !== undefined && ebr >= edited.start && ebr <= end) return `cover the EBR of partition ${q.number} (LBA ${ebr})`;
  }
  const ext = logical ? extendedPartition(table) : undefined;
  if (ext && end > partitionEnd(ext)) return `end past its extended partition (LBA ${partitionEnd(ext)})`;
  return null;
}

function applyDosFields(table: PartitionTable, p: Partition, next: Partition, line: ReturnType<typeof asLine>, warnings: string[]): void {
  if (line.bootGiven) next.bootable = line.boot;
  if (line.type?.label !== 'dos') return;
  const type = (line.type.code & 0xff).toString(16);
  const ext = extendedPartition(table);
  if (isExtendedType(type) && ext && ext !== p) throw new ToolError('SCRIPT', `partition ${p.number}: Extended partition already exists.`);
  if (ext === p && !isExtendedType(type) && table.partitions.some((q) => q.number >= 5)) {
    throw new ToolError('SCRIPT', `partition ${p.number}: Cannot change type of the extended partition which is already used by logical partitions. Delete logical partitions first.`);
  }
  if (p.number >= 5 && isExtendedType(type)) throw new ToolError('SCRIPT', `partition ${p.number}: a logical partition cannot be extended (libfdisk would read it as a link of the EBR chain)`);
  if (type === '0') warnings.push('Type 0 means free space to many systems. Having partitions of type 0 is probably unwise.');
  next.type = type;
}

function applyGptFields(table: PartitionTable, next: Partition, line: ReturnType<typeof asLine>): void {
  if (line.uuid !== undefined) {
    if (!isGuid(line.uuid)) throw new ToolError('SCRIPT', `partition ${next.number}: failed to parse partition uuid '${line.uuid}'`);
    next.uuid = normalizeGuid(line.uuid);
  }
  if (line.name !== undefined) {
    const name = sfdiskGptName(line.name);
    if (name === null) throw new ToolError('SCRIPT', `partition ${next.number}: the name is not UTF-8 of the Basic Multilingual Plane`);
    next.name = name;
  }
  if (line.type?.label === 'gpt') {
    if (!isGuid(line.type.typestr)) throw new ToolError('SCRIPT', `partition ${next.number}: failed to parse GUID: ${line.type.typestr}`);
    next.type = normalizeGuid(line.type.typestr);
  }
  if (line.attrs !== undefined) {
    const attrs = parseGptAttributes(line.attrs);
    if (typeof attrs !== 'bigint') throw new ToolError('SCRIPT', `partition ${next.number}: ${attrs.error}`);
    next.attributes = attrs;
  }
  if (next.start < firstUsableLba(table)) throw new ToolError('REFUSED', `partition ${next.number}: The start of the partition understeps FirstUsableLBA; nothing written`);
  if (partitionEnd(next) > lastUsableLba(table)) throw new ToolError('REFUSED', `partition ${next.number}: The end of the partition oversteps LastUsableLBA; nothing written`);
}

/**
 * sfdisk --append (and -N N for an unused N, `partno`): the script's partitions added to the
 * table on the disk, laid out by sfdisk's own rules around the partitions already there (dos: new
 * logical partitions inside the extended one, their EBRs where libfdisk puts them). The existing
 * partitions come back unchanged; new GPT partitions get random unique GUIDs unless the script
 * gives them. Throws ToolError SCRIPT with the script line's number when sfdisk would fail.
 */
export function appendFromScript(current: PartitionTable, script: string, partno?: number): ScriptPlan {
  const options = partno === undefined ? { existing: current } : { existing: current, partno };
  const result = parseSfdiskScript(script, { sectorSize: current.sectorSize, diskSectors: current.diskSectors }, options);
  if (!result.ok) throw new ToolError('SCRIPT', `script line ${result.error.line}: ${result.error.message}`);
  const departure = result.departures[0];
  if (departure) throw new ToolError('SCRIPT', `script line ${departure.line}: ${departure.message}`);
  const partitions = result.table.partitions.map((p) => (current.label === 'gpt' && !p.uuid ? { ...p, uuid: randomGuid() } : p));
  return { table: { ...current, partitions }, warnings: result.warnings.map((w) => `script line ${w.line}: ${w.message}`) };
}
