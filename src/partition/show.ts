/**
 * `ptable show`: a readable table, one line per partition (pure).
 */
import type { PartitionTable } from './model.js';
import { typeName } from './gpt-types.js';

const UNITS = ['B', 'K', 'M', 'G', 'T', 'P'];

/** Human size in powers of 1024, as fdisk -l prints it ("512M", "1.5G"). */
export function humanSize(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = value >= 10 || Number.isInteger(value) ? String(Math.round(value)) : value.toFixed(1).replace(/\.0$/, '');
  return `${text}${UNITS[unit]}`;
}

/** PARTUUID as the kernel and blkid name it: dos "<signature>-<nn>", gpt the entry's GUID. */
export function partUuid(table: PartitionTable, number: number): string {
  if (table.label === 'gpt') return (table.partitions.find((p) => p.number === number)?.uuid ?? '').toLowerCase();
  return `${table.id.replace(/^0x/i, '').toLowerCase().padStart(8, '0')}-${number.toString(16).padStart(2, '0')}`;
}

export function formatShow(table: PartitionTable, devicePath: string): string {
  const header =
    table.label === 'gpt'
      ? `${devicePath}: gpt, disk GUID ${table.id}, ${table.diskSectors} sectors of ${table.sectorSize} bytes (${humanSize(table.diskSectors * table.sectorSize)}), usable LBA ${table.firstLba}-${table.lastLba}`
      : `${devicePath}: dos, disk identifier ${table.id}, ${table.diskSectors} sectors of ${table.sectorSize} bytes (${humanSize(table.diskSectors * table.sectorSize)})`;
  const rows = table.partitions.map((p) => [
    String(p.number),
    p.bootable ? '*' : '',
    String(p.start),
    String(p.start + p.size - 1),
    String(p.size),
    humanSize(p.size * table.sectorSize),
    typeName(table.label, p.type) ?? p.type,
    p.name ?? '',
    partUuid(table, p.number),
  ]);
  const titles = ['#', 'Boot', 'Start', 'End', 'Sectors', 'Size', 'Type', 'Name', 'PARTUUID'];
  const all = [titles, ...rows];
  const widths = titles.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const rightAligned = new Set([0, 2, 3, 4, 5]);
  const line = (r: string[]) =>
    r
      .map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [header, '', ...all.map(line)].join('\n') + '\n';
}
