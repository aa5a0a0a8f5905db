/**
 * Test utility: VMDK hosted sparse files read and rebuilt with plain arithmetic on the technote's
 * layout (independent of src/format): the grain directory and tables of a file, and a qemu-made
 * streamOptimized file rebuilt as VirtualBox's stream writer lays one out (header with GD_AT_END,
 * grains, GT markers after their grains, GD marker, footer marker and footer, end-of-stream),
 * optionally with its grains out of order or a progress marker, to test what qemu does not write.
 */

const SECTOR = 512;

export interface SparseLayout {
  version: number;
  flags: number;
  capacitySectors: number;
  grainSectors: number;
  gtes: number;
  gdSector: number;
  overHeadSectors: number;
  descriptorSector: number;
  descriptorSectors: number;
  /** Each allocated GT: its GD index, where its GDE is, where it lies. */
  tables: { gdIndex: number; gdeAt: number; tableAt: number }[];
  /** Each non-zero GTE: the grain index, where the GTE is, its value. */
  grains: { grain: number; gteAt: number; value: number }[];
}

/** The header (or, when gdOffset is GD_AT_END, the footer's gdOffset) and every table entry. */
export function sparseLayout(bytes: Buffer): SparseLayout {
  if (bytes.toString('latin1', 0, 4) !== 'KDMV') throw new Error('not KDMV');
  let gd = bytes.readBigUInt64LE(56);
  if (gd === 0xffffffffffffffffn) gd = bytes.readBigUInt64LE(bytes.length - 1024 + 56);
  const l: SparseLayout = {
    version: bytes.readUInt32LE(4),
    flags: bytes.readUInt32LE(8),
    capacitySectors: Number(bytes.readBigUInt64LE(12)),
    grainSectors: Number(bytes.readBigUInt64LE(20)),
    descriptorSector: Number(bytes.readBigUInt64LE(28)),
    descriptorSectors: Number(bytes.readBigUInt64LE(36)),
    gtes: bytes.readUInt32LE(44),
    gdSector: Number(gd),
    overHeadSectors: Number(bytes.readBigUInt64LE(64)),
    tables: [],
    grains: [],
  };
  const gdEntries = Math.ceil(l.capacitySectors / (l.grainSectors * l.gtes));
  for (let i = 0; i < gdEntries; i++) {
    const gdeAt = l.gdSector * SECTOR + i * 4;
    const gt = bytes.readUInt32LE(gdeAt);
    if (gt === 0) continue;
    l.tables.push({ gdIndex: i, gdeAt, tableAt: gt * SECTOR });
    for (let j = 0; j < l.gtes; j++) {
      const gteAt = gt * SECTOR + j * 4;
      const value = bytes.readUInt32LE(gteAt);
      if (value !== 0) l.grains.push({ grain: i * l.gtes + j, gteAt, value });
    }
  }
  return l;
}

const pad = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((SECTOR - (b.length % SECTOR)) % SECTOR)]);

function metadataMarker(type: number, numSectors: number): Buffer {
  const m = Buffer.alloc(SECTOR);
  m.writeBigUInt64LE(BigInt(numSectors), 0);
  m.writeUInt32LE(type, 12);
  return m;
}

/**
 * A qemu streamOptimized file (grains with markers, tables before them) rebuilt as a stream:
 * header (GD_AT_END) and descriptor, the grains in LBA order (or with the first two swapped), each
 * GT after its grains with a GT marker, the GD with its marker, footer marker, footer, EOS.
 */
export function restream(qemuFile: Buffer, options: { swapFirstGrains?: boolean; progressMarker?: boolean } = {}): Buffer {
  const l = sparseLayout(qemuFile);
  const header = Buffer.from(qemuFile.subarray(0, SECTOR));
  header.writeUInt32LE(3, 4);
  header.writeUInt32LE(0x00030001, 8); // newline test, compressed, markers: no redundant GD
  header.writeBigUInt64LE(0n, 48);
  header.writeBigUInt64LE(0xffffffffffffffffn, 56);
  const descriptorEnd = (l.descriptorSector + l.descriptorSectors) * SECTOR;
  header.writeBigUInt64LE(BigInt(descriptorEnd / SECTOR), 64);
  const parts: Buffer[] = [header, qemuFile.subarray(SECTOR, descriptorEnd)];
  let at = descriptorEnd;
  const push = (b: Buffer): number => {
    const where = at;
    parts.push(b);
    at += b.length;
    return where;
  };
  const grains = l.grains.map((g) => {
    const markerAt = g.value * SECTOR;
    const size = qemuFile.readUInt32LE(markerAt + 8);
    return { grain: g.grain, block: pad(Buffer.from(qemuFile.subarray(markerAt, markerAt + 12 + size))) };
  });
  if (options.swapFirstGrains && grains.length >= 2) [grains[0], grains[1]] = [grains[1]!, grains[0]!];
  const gdEntries = Math.ceil(l.capacitySectors / (l.grainSectors * l.gtes));
  const gd = Buffer.alloc(gdEntries * 4);
  const gtBytes = l.gtes * 4;
  let table: { index: number; gt: Buffer } | null = null;
  const flushTable = (): void => {
    if (!table) return;
    push(metadataMarker(1, Math.ceil(gtBytes / SECTOR)));
    gd.writeUInt32LE(push(pad(table.gt)) / SECTOR, table.index * 4);
    table = null;
  };
  grains.forEach((g, i) => {
    const index = Math.floor(g.grain / l.gtes);
    if (table && table.index !== index) flushTable();
    table ??= { index, gt: Buffer.alloc(gtBytes) };
    table.gt.writeUInt32LE(push(g.block) / SECTOR, (g.grain % l.gtes) * 4);
    if (options.progressMarker && i === 0) push(metadataMarker(4, 0));
  });
  flushTable();
  push(metadataMarker(2, Math.ceil(gd.length / SECTOR)));
  const gdAt = push(pad(gd));
  push(metadataMarker(3, 1));
  const footer = Buffer.from(header);
  footer.writeBigUInt64LE(BigInt(gdAt / SECTOR), 56);
  push(footer);
  push(Buffer.alloc(SECTOR)); // end of stream
  return Buffer.concat(parts);
}
