/**
 * A VMDK virtual disk as the concatenation of its extents (a descriptor's extent lines, or the one
 * sparse extent of a monolithicSparse or streamOptimized file): each extent a flat file region, a
 * hosted sparse extent or zeros, mapped into runs the qcow2 reader's machinery copies (holes
 * unread, stored bytes in long reads, compressed grains inflated in parallel).
 */
import type { ChainFile } from './qcow2-layer.js';
import type { ClusterInflater, DiskImage, ResolvedRun } from './qcow2-image.js';
import type { SparseExtent } from './vmdk-sparse.js';

export type DiskExtent =
  | { kind: 'flat'; bytes: number; file: ChainFile; fileOffset: number }
  | { kind: 'sparse'; bytes: number; extent: SparseExtent }
  | { kind: 'zero'; bytes: number };

/** A flat file's region [from, from + length) as runs at disk offset `at`: its holes (when the file tells them) as zeros. */
function* flatRuns(file: ChainFile, from: number, length: number, at: number): Generator<ResolvedRun> {
  if (!file.dataSegments) {
    yield { kind: 'data', offset: at, length, file, host: from };
    return;
  }
  const end = from + length;
  let pos = from;
  for (const s of file.dataSegments(from)) {
    if (s.offset >= end) break;
    const dataStart = Math.max(pos, s.offset);
    const dataEnd = Math.min(end, s.offset + s.length);
    if (dataEnd <= dataStart) continue;
    if (dataStart > pos) yield { kind: 'zero', offset: at + (pos - from), length: dataStart - pos };
    yield { kind: 'data', offset: at + (dataStart - from), length: dataEnd - dataStart, file, host: dataStart };
    pos = dataEnd;
  }
  if (end > pos) yield { kind: 'zero', offset: at + (pos - from), length: end - pos };
}

type CompressedRun = Extract<ResolvedRun, { kind: 'compressed' }>;

/** A sparse extent's runs moved to where the extent starts in the disk (its grains inflated where the extent has them). */
function* shifted(extent: SparseExtent, base: number, from: number, to: number): Generator<ResolvedRun> {
  if (base === 0) return yield* extent.runs(from, to);
  const back = (r: CompressedRun): CompressedRun => ({ ...r, offset: r.offset - base, clusterOffset: r.clusterOffset - base });
  const image: ClusterInflater = { inflate: (r, bytes) => extent.inflate(back(r), bytes), inflateSync: (r) => extent.inflateSync(back(r)) };
  for (const run of extent.runs(from, to)) {
    yield run.kind === 'compressed' ? { ...run, image, offset: run.offset + base, clusterOffset: run.clusterOffset + base } : { ...run, offset: run.offset + base };
  }
}

export class VmdkDisk implements DiskImage {
  readonly virtualSize: number;
  private readonly starts: number[];

  constructor(readonly extents: DiskExtent[]) {
    let at = 0;
    this.starts = extents.map((e) => {
      const start = at;
      at += e.bytes;
      return start;
    });
    this.virtualSize = at;
  }

  *runs(start: number, end: number): Generator<ResolvedRun> {
    const stop = Math.min(end, this.virtualSize);
    // The first extent that reaches past `start` (binary search: a descriptor may have thousands).
    let lo = 0;
    let hi = this.extents.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= start) lo = mid;
      else hi = mid - 1;
    }
    for (let i = lo; i < this.extents.length && this.starts[i]! < stop; i++) {
      const e = this.extents[i]!;
      const base = this.starts[i]!;
      const from = Math.max(start, base) - base;
      const to = Math.min(stop, base + e.bytes) - base;
      if (to <= from) continue;
      if (e.kind === 'zero') yield { kind: 'zero', offset: base + from, length: to - from };
      else if (e.kind === 'flat') yield* flatRuns(e.file, e.fileOffset + from, to - from, base + from);
      else yield* shifted(e.extent, base, from, to);
    }
  }
}
