/**
 * Test utility: an independent structural check of a streamOptimized VMDK, written from the fact
 * sheet (shared/notes/image-formats.md §1.2-1.4, 1.7: VMware's technote, qemu's and VirtualBox's
 * readers), not from our writer: its own offsets and constants, node:zlib to inflate. It walks the
 * whole file in order, as a sequential reader does, and throws on the first thing wrong; it returns
 * what it found, and the disk's bytes when asked (small disks only).
 */
import fs from 'node:fs';
import zlib from 'node:zlib';

const SECTOR = 512;
const GRAIN_SECTORS = 128;
const GRAIN_BYTES = GRAIN_SECTORS * SECTOR;
const GTES = 512;
const GD_AT_END = 0xffffffffffffffffn;

export interface StreamStructure {
  capacitySectors: number;
  descriptor: string;
  /** ddb and header keys of the descriptor, as key -> value (quotes removed). */
  fields: Record<string, string>;
  extentLine: string;
  /** Grain LBA (sectors) -> sector of its marker, in file order. */
  grains: Map<number, number>;
  grainTables: number;
  gdEntries: number[];
  /** The virtual disk's bytes (when asked): grains inflated in place, zeros elsewhere. */
  disk: Buffer | null;
}

class StructureError extends Error {}

function fail(what: string, byte: number): never {
  throw new StructureError(`streamOptimized check: ${what} (at byte ${byte})`);
}

function u64(buf: Buffer, at: number): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`u64 ${v} too large`, at);
  return Number(v);
}

/** Checks `file` (a path or its bytes) as a streamOptimized VMDK; `withDisk` also rebuilds the disk. */
export function checkStreamOptimized(file: string | Buffer, options: { withDisk?: boolean; fileName?: string } = {}): StreamStructure {
  const buf = typeof file === 'string' ? fs.readFileSync(file) : file;
  if (buf.length % SECTOR !== 0) fail(`file length ${buf.length} is not whole sectors`, buf.length);
  if (buf.length < 4 * SECTOR) fail('file too short for a header, a footer and an EOS marker', 0);
  // Header (technote "Hosted Sparse Extent Header").
  if (buf.toString('latin1', 0, 4) !== 'KDMV') fail('no KDMV magic', 0);
  if (buf.readUInt32LE(4) !== 3) fail(`version ${buf.readUInt32LE(4)}, expected 3`, 4);
  const flags = buf.readUInt32LE(8);
  for (const bit of [0, 16, 17]) if (!(flags & (1 << bit))) fail(`flags 0x${flags.toString(16)} lack bit ${bit}`, 8);
  const capacitySectors = u64(buf, 12);
  if (u64(buf, 20) !== GRAIN_SECTORS) fail(`grainSize ${u64(buf, 20)}, expected 128`, 20);
  const descriptorOffset = u64(buf, 28);
  const descriptorSize = u64(buf, 36);
  if (buf.readUInt32LE(44) !== GTES) fail(`numGTEsPerGT ${buf.readUInt32LE(44)}`, 44);
  if (buf.readBigUInt64LE(56) !== GD_AT_END) fail('header gdOffset is not GD_AT_END', 56);
  const overHead = u64(buf, 64);
  if (buf[72] !== 0) fail('uncleanShutdown set', 72);
  if (buf.toString('latin1', 73, 77) !== '\n \r\n') fail('newline test bytes wrong', 73);
  if (buf.readUInt16LE(77) !== 1) fail(`compressAlgorithm ${buf.readUInt16LE(77)}, expected 1 (deflate)`, 77);
  if (descriptorOffset !== 1 || descriptorSize < 20) fail(`descriptor at sector ${descriptorOffset}, ${descriptorSize} sectors: expected sector 1, at least 20`, 28);
  if (overHead < descriptorOffset + descriptorSize) fail(`overHead ${overHead} inside the descriptor`, 64);

  // Descriptor: text, then zeros (the room).
  const area = buf.subarray(descriptorOffset * SECTOR, (descriptorOffset + descriptorSize) * SECTOR);
  const nul = area.indexOf(0);
  const descriptor = area.toString('utf8', 0, nul < 0 ? area.length : nul);
  if (nul < 0 || area.subarray(nul).some((b) => b !== 0)) fail('descriptor area not text then zeros', descriptorOffset * SECTOR);
  if (area.length - descriptor.length < 10 * SECTOR) fail(`only ${area.length - descriptor.length} bytes of room after the descriptor`, descriptorOffset * SECTOR);
  const fields: Record<string, string> = {};
  const lines = descriptor.split('\n');
  for (const line of lines) {
    if (/^\s+\S/.test(line)) fail(`indented descriptor line ${JSON.stringify(line)}`, SECTOR);
    const m = /^([A-Za-z.]+)\s*=\s*"?([^"]*)"?\s*$/.exec(line);
    if (m) fields[m[1]!] = m[2]!;
  }
  for (const key of ['version', 'CID', 'parentCID', 'createType', 'ddb.adapterType', 'ddb.toolsVersion', 'ddb.virtualHWVersion', 'ddb.geometry.cylinders', 'ddb.geometry.heads', 'ddb.geometry.sectors']) {
    if (fields[key] === undefined) fail(`descriptor lacks ${key}`, SECTOR);
  }
  if (fields.version !== '1' || fields.parentCID !== 'ffffffff' || fields.createType !== 'streamOptimized' || !/^[0-9a-f]{8}$/.test(fields.CID!)) fail(`descriptor header ${JSON.stringify(fields)}`, SECTOR);
  if (!['ide', 'buslogic', 'lsilogic', 'legacyESX'].includes(fields['ddb.adapterType']!)) fail(`adapter type ${fields['ddb.adapterType']}`, SECTOR);
  const extentLines = lines.filter((l) => /^(RW|RDONLY|NOACCESS) /.test(l));
  if (extentLines.length !== 1) fail(`${extentLines.length} extent lines`, SECTOR);
  const extent = /^RW (\d+) SPARSE "([^"]+)"$/.exec(extentLines[0]!);
  if (!extent || Number(extent[1]) !== capacitySectors) fail(`extent line ${JSON.stringify(extentLines[0])} does not say RW ${capacitySectors} SPARSE "..."`, SECTOR);
  if (options.fileName !== undefined && extent[2] !== options.fileName) fail(`extent file ${extent[2]}, expected ${options.fileName}`, SECTOR);

  // The walk, marker by marker, from overHead.
  const gdeCount = Math.ceil(capacitySectors / (GRAIN_SECTORS * GTES));
  const grains = new Map<number, number>();
  const gts: { sector: number; entries: Uint32Array; afterLba: number }[] = [];
  let gd: { sector: number; entries: number[] } | null = null;
  let footerSector = -1;
  let lastLba = -1;
  const disk = options.withDisk ? Buffer.alloc(capacitySectors * SECTOR) : null;
  let s = overHead;
  for (;;) {
    const at = s * SECTOR;
    if (at + 16 > buf.length) fail('ran past the end without an EOS marker', at);
    const value = u64(buf, at);
    const size = buf.readUInt32LE(at + 8);
    if (size !== 0) {
      const lba = value;
      if (lba <= lastLba) fail(`grain LBA ${lba} after ${lastLba}: not ascending`, at);
      if (lba % GRAIN_SECTORS !== 0) fail(`grain LBA ${lba} not grain-aligned`, at);
      if (lba >= capacitySectors) fail(`grain LBA ${lba} past capacity ${capacitySectors}`, at);
      if (gd) fail('grain after the GD', at);
      if (at + 12 + size > buf.length) fail(`grain of ${size} bytes runs past the end`, at);
      let inflated: Buffer;
      try {
        inflated = zlib.inflateSync(buf.subarray(at + 12, at + 12 + size)); // zlib wrapper (RFC 1950): header and Adler-32 checked
      } catch (err) {
        fail(`grain at LBA ${lba} does not inflate as zlib: ${(err as Error).message}`, at);
      }
      const partial = (capacitySectors - lba) * SECTOR;
      if (inflated.length !== GRAIN_BYTES && !(partial < GRAIN_BYTES && inflated.length === partial)) fail(`grain at LBA ${lba} inflates to ${inflated.length} bytes`, at);
      if (disk) inflated.copy(disk, lba * SECTOR, 0, Math.min(inflated.length, partial));
      grains.set(lba, s);
      lastLba = lba;
      const end = at + 12 + size;
      if (buf.subarray(end, Math.ceil(end / SECTOR) * SECTOR).some((b) => b !== 0)) fail('grain padding not zero', end);
      s = Math.ceil(end / SECTOR);
      continue;
    }
    const type = buf.readUInt32LE(at + 12);
    if (buf.subarray(at + 16, at + SECTOR).some((b) => b !== 0)) fail(`marker type ${type}: bytes after the type not zero`, at);
    if (type === 1) {
      if (value !== 4) fail(`GT marker numSectors ${value}, expected 4`, at);
      gts.push({ sector: s + 1, entries: new Uint32Array(buf.buffer.slice(buf.byteOffset + at + SECTOR, buf.byteOffset + at + SECTOR + GTES * 4)), afterLba: lastLba });
      s += 1 + 4;
    } else if (type === 2) {
      if (gd) fail('second GD', at);
      const expected = Math.ceil((gdeCount * 4) / SECTOR);
      if (value !== expected) fail(`GD marker numSectors ${value}, expected ${expected} for ${gdeCount} entries`, at);
      const entries: number[] = [];
      for (let i = 0; i < gdeCount; i++) entries.push(buf.readUInt32LE(at + SECTOR + i * 4));
      gd = { sector: s + 1, entries };
      s += 1 + value;
    } else if (type === 3) {
      if (value !== 1) fail(`footer marker numSectors ${value}`, at);
      if (at !== buf.length - 3 * SECTOR) fail(`footer marker at byte ${at}, expected EOF-1536 = ${buf.length - 3 * SECTOR}`, at);
      footerSector = s + 1;
      s += 2;
    } else if (type === 0) {
      if (value !== 0) fail(`EOS marker numSectors ${value}`, at);
      if (at !== buf.length - SECTOR) fail(`EOS marker at byte ${at}, expected EOF-512`, at);
      break;
    } else {
      fail(`unknown marker type ${type}`, at);
    }
  }
  if (!gd) fail('no GD', buf.length);
  if (footerSector < 0) fail('no footer', buf.length);
  // Footer: the header but for gdOffset, which is the GD's sector.
  const header = buf.subarray(0, SECTOR);
  const footer = buf.subarray(footerSector * SECTOR, footerSector * SECTOR + SECTOR);
  if (!header.subarray(0, 56).equals(footer.subarray(0, 56)) || !header.subarray(64).equals(footer.subarray(64))) fail('footer differs from the header beyond gdOffset', footerSector * SECTOR);
  if (u64(footer, 56) !== gd.sector) fail(`footer gdOffset ${u64(footer, 56)}, GD at sector ${gd.sector}`, footerSector * SECTOR + 56);

  // Tables: every GDE at its GT (0 for an omitted one), every GTE at the marker of its grain, each GT after its region's grains.
  const referenced = new Set<number>();
  const gtAt = new Map(gts.map((g) => [g.sector, g]));
  gd.entries.forEach((gde, region) => {
    const regionStart = region * GTES * GRAIN_SECTORS;
    const regionEnd = regionStart + GTES * GRAIN_SECTORS;
    const grainsHere = [...grains.keys()].filter((lba) => lba >= regionStart && lba < regionEnd);
    if (gde === 0) {
      if (grainsHere.length > 0) fail(`GDE ${region} is 0 and the region has ${grainsHere.length} grains`, gd!.sector * SECTOR + region * 4);
      return;
    }
    const gt = gtAt.get(gde);
    if (!gt) fail(`GDE ${region} = ${gde} is not a GT`, gd!.sector * SECTOR + region * 4);
    if (grainsHere.length === 0) fail(`GDE ${region}: a GT for a region without grains`, gde * SECTOR);
    if (gt.afterLba < Math.max(...grainsHere)) fail(`GT of region ${region} before its last grain`, gde * SECTOR);
    if ([...grains.keys()].some((lba) => lba >= regionEnd && grains.get(lba)! < gde)) fail(`a grain of a later region before GT ${region}`, gde * SECTOR);
    gt.entries.forEach((gte, i) => {
      const lba = regionStart + i * GRAIN_SECTORS;
      if (gte === 0) {
        if (grains.has(lba)) fail(`GTE for LBA ${lba} is 0 and the grain exists`, gde * SECTOR + i * 4);
        return;
      }
      if (grains.get(lba) !== gte) fail(`GTE for LBA ${lba} = ${gte}, the grain's marker at ${grains.get(lba)}`, gde * SECTOR + i * 4);
      referenced.add(lba);
    });
  });
  if (gts.length !== gd.entries.filter((e) => e !== 0).length) fail(`${gts.length} GTs, ${gd.entries.filter((e) => e !== 0).length} GDEs use them`, gd.sector * SECTOR);
  if (referenced.size !== grains.size) fail(`${grains.size - referenced.size} grains no GTE points at`, gd.sector * SECTOR);
  return { capacitySectors, descriptor, fields, extentLine: extentLines[0]!, grains, grainTables: gts.length, gdEntries: gd.entries, disk };
}
