/**
 * `sfdisk --json` text (util-linux 2.38), printed from the shared partition-table model.
 *
 * The same headers and partitions as the dump (see sfdisk-dump.ts), through libfdisk's JSON
 * writer: three-space indentation, `"key": value`, objects in the partitions array joined as
 * `},{`, a final newline. Header keys are renamed first-lba -> firstlba, last-lba -> lastlba,
 * sector-size -> sectorsize, label-id -> id; those three numbers are bare, every other header
 * (including "table-length" and "grain") is a string. Per partition: node, start, size (numbers),
 * type (string: dos "83"/"c", gpt GUID), uuid, name, attrs (gpt), bootable (dos, only `true`).
 * Strings escape `"` and `\` with a backslash, \b \t \n \f \r by name, other control characters
 * as \u00XX; everything else (DEL, non-ASCII) is written as is.
 *
 * Pure: strings and model objects, no I/O.
 */
import type { PartitionTable } from './model.js';
import {
  formatGptAttributes,
  gptNameText,
  sfdiskDosType,
  sfdiskHeaders,
  sfdiskOrder,
  sfdiskPartitionName,
  type SfdiskFormatOptions,
} from './sfdisk-dump.js';

/** libfdisk's fputs_quoted_json(), on code units (the caller writes the string out as UTF-8). */
export function sfdiskJsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i] as string;
    const c = s.charCodeAt(i);
    if (ch === '"' || ch === '\\') out += '\\' + ch;
    else if (c >= 0x20) out += ch;
    else if (c === 0x08) out += '\\b';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0c) out += '\\f';
    else if (c === 0x0d) out += '\\r';
    else out += `\\u00${c.toString(16).padStart(2, '0')}`;
  }
  return out + '"';
}

const JSON_NAMES: Record<string, string> = { 'first-lba': 'firstlba', 'last-lba': 'lastlba', 'sector-size': 'sectorsize', 'label-id': 'id' };
const JSON_NUMERIC = new Set(['firstlba', 'lastlba', 'sectorsize']);

/** Exactly what `sfdisk -J DEVICE` prints for this table (util-linux 2.38). */
export function formatSfdiskJson(table: PartitionTable, devicePath: string, options: SfdiskFormatOptions = {}): string {
  const ind = (n: number): string => '   '.repeat(n);
  const members: string[] = [];
  for (const h of sfdiskHeaders(table, devicePath, options)) {
    const key = JSON_NAMES[h.name] ?? h.name;
    members.push(`${ind(2)}${sfdiskJsonString(key)}: ${JSON_NUMERIC.has(key) ? h.value : sfdiskJsonString(h.value)}`);
  }
  const parts = sfdiskOrder(table);
  let body = members.join(',\n');
  if (parts.length > 0) {
    const objects = parts.map((p) => {
      const fields: string[] = [];
      const field = (key: string, raw: string): void => {
        fields.push(`${ind(4)}"${key}": ${raw}`);
      };
      if (devicePath !== '') field('node', sfdiskJsonString(sfdiskPartitionName(devicePath, p.number)));
      field('start', String(p.start));
      field('size', String(p.size));
      if (table.label === 'dos') {
        field('type', sfdiskJsonString(sfdiskDosType(p.type)));
        if (p.bootable) field('bootable', 'true');
      } else {
        field('type', sfdiskJsonString(p.type.toUpperCase()));
        if (p.uuid !== undefined) field('uuid', sfdiskJsonString(p.uuid.toUpperCase()));
        const name = p.name === undefined ? '' : gptNameText(p.name);
        if (name !== '') field('name', sfdiskJsonString(name));
        const attrs = formatGptAttributes(p.attributes);
        // libfdisk writes an empty string value as null (a field of only bits 3-47).
        if (attrs !== undefined) field('attrs', attrs === '' ? 'null' : sfdiskJsonString(attrs));
      }
      return `${fields.join(',\n')}\n${ind(3)}}`;
    });
    body += `,\n${ind(2)}"partitions": [\n${ind(3)}{\n${objects.join(`,{\n`)}\n${ind(2)}]`;
  }
  return `{\n${ind(1)}"partitiontable": {\n${body}\n${ind(1)}}\n}\n`;
}
