/**
 * From an sfdisk script to the table to write: parse it for the disk's size, then give every id
 * the script leaves open a fresh random value, as sfdisk does (pure apart from the randomness).
 */
import { crypto } from '../builtins.js';
import { ToolError } from '../errors.js';
import { gptEntriesSectors } from './align.js';
import { randomGuid } from './guid.js';
import { formatDiskId } from './mbr.js';
import type { LabelType, PartitionTable } from './model.js';
import { parseSfdiskScript } from './sfdisk-script.js';

export interface ScriptTarget {
  path: string;
  sectorSize: number;
  /** Current size in sectors; 0 for a new, empty image. */
  diskSectors: number;
  /** The disk's current label: sfdisk keeps it when the script names none. */
  currentLabel?: LabelType;
}

export interface ScriptPlan {
  table: PartitionTable;
  /** "script line N: ..." notes (ignored headers or fields), for the command to show. */
  warnings: string[];
}

/** Any size: whether a script changes the disk does not depend on it. */
const PROBE_SECTORS = 1 << 21;

/** A new image's size from the script's own last-lba (gpt), when it has one. */
function sizeFromHeaders(script: string, sectorSize: number): number | null {
  const lastLba = /^\s*last-lba\s*:\s*(\d+)\s*$/m.exec(script);
  if (!lastLba?.[1]) return null;
  const tableLength = Number(/^\s*table-length\s*:\s*(\d+)\s*$/m.exec(script)?.[1] ?? 128);
  return Number(lastLba[1]) + 1 + gptEntriesSectors(tableLength, sectorSize) + 1;
}

/**
 * The table a script asks for on this disk, or null when the script changes nothing (empty, or
 * only blank lines, comments, headers other than "label:" and commands): sfdisk writes nothing
 * then, and neither does ptable.
 */
export function prepareScriptTable(script: string, target: ScriptTarget): ScriptPlan | null {
  const options = target.currentLabel ? { defaultLabel: target.currentLabel } : {};
  const probe = parseSfdiskScript(script, { sectorSize: target.sectorSize, diskSectors: target.diskSectors || PROBE_SECTORS }, options);
  if (probe.ok && !probe.changesDisk) return null;
  let diskSectors = target.diskSectors;
  if (diskSectors === 0) {
    diskSectors = sizeFromHeaders(script, target.sectorSize) ?? 0;
    if (diskSectors === 0) throw new ToolError('USAGE', `${target.path}: empty or new image: give its size with --size (e.g. --size 2G)`);
  }
  const result = parseSfdiskScript(script, { sectorSize: target.sectorSize, diskSectors }, options);
  if (!result.ok) throw new ToolError('SCRIPT', `${target.path}: script line ${result.error.line}: ${result.error.message}`);
  const departure = result.departures[0];
  if (departure) throw new ToolError('SCRIPT', `${target.path}: script line ${departure.line}: ${departure.message}`);
  const parsed = result.table;
  const id = parsed.id ?? (parsed.label === 'gpt' ? randomGuid() : formatDiskId(crypto().randomBytes(4).readUInt32LE(0) || 1));
  const partitions = parsed.partitions.map((p) => (parsed.label === 'gpt' && !p.uuid ? { ...p, uuid: randomGuid() } : p));
  return {
    table: { ...parsed, id, diskSectors, partitions },
    warnings: result.warnings.map((w) => `script line ${w.line}: ${w.message}`),
  };
}
