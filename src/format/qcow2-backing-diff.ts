/**
 * What a new qcow2 layer over a backing file (--backing BASE) stores for each guest cluster, as
 * qemu reads such a layer: an unallocated cluster reads through to BASE, a zero cluster (v3 flag)
 * reads as zeros whatever BASE holds, a data cluster as its own bytes. So a cluster equal to BASE's
 * bytes (zeros over BASE's zeros included) stays unallocated, zeros over BASE's data become a zero
 * cluster, and anything else is data.
 *
 * BASE is only read where it may hold data (its holes, unallocated or zero clusters, cost
 * nothing), through `mayHoldData`, walked once in order: clusters are judged in increasing order,
 * as a sink completes them, and the holes between them on the way.
 */

export type ClusterVerdict = 'unallocated' | 'zero' | 'data';

/** The backing file's virtual disk, as the comparison reads it. */
export interface BackingDisk {
  /** Bytes at `offset` (zeros past its end), into `into` when given. */
  readAt(offset: number, length: number, into?: Buffer): Buffer;
  /** Ranges, in order, outside which the disk reads as zeros (from `start` on). */
  mayHoldData(start: number): Iterator<{ offset: number; length: number }>;
}

export class BackingComparison {
  private readonly ranges: Iterator<{ offset: number; length: number }>;
  /** The first range not yet passed, or null once they are all passed. */
  private range: { offset: number; length: number } | null;
  private readonly scratch: Buffer;
  private readonly zeros: Buffer;
  /** The first guest cluster not judged yet. */
  private judgedUpTo = 0;

  constructor(
    private readonly base: BackingDisk,
    private readonly clusterSize: number,
  ) {
    this.ranges = base.mayHoldData(0);
    this.range = this.nextRange();
    this.scratch = Buffer.alloc(clusterSize);
    this.zeros = Buffer.alloc(clusterSize);
  }

  /** What guest cluster `index`, holding `cluster` (all of it, zeros where the source has none), becomes. */
  verdict(index: number, cluster: Buffer): ClusterVerdict {
    this.judgedUpTo = Math.max(this.judgedUpTo, index + 1);
    const zero = cluster.equals(this.zeros);
    if (!this.baseMayHoldData(index)) return zero ? 'unallocated' : 'data';
    const below = this.base.readAt(index * this.clusterSize, this.clusterSize, this.scratch);
    if (below.equals(cluster)) return 'unallocated';
    return zero ? 'zero' : 'data';
  }

  /**
   * The clusters not judged yet before `to`, which the source has no data in: those where BASE has
   * data become zero clusters. Only where BASE may hold data is read.
   */
  *zeroClustersBefore(to: number): Generator<number> {
    let index = this.judgedUpTo;
    this.judgedUpTo = Math.max(this.judgedUpTo, to);
    while (index < to) {
      this.passBefore(index * this.clusterSize);
      if (!this.range) return;
      index = Math.max(index, Math.floor(this.range.offset / this.clusterSize));
      if (index >= to) return;
      const below = this.base.readAt(index * this.clusterSize, this.clusterSize, this.scratch);
      if (!below.equals(this.zeros)) yield index;
      index++;
    }
  }

  private baseMayHoldData(index: number): boolean {
    const start = index * this.clusterSize;
    this.passBefore(start);
    return this.range !== null && this.range.offset < start + this.clusterSize;
  }

  /** Drops the ranges that end at or before `offset`. */
  private passBefore(offset: number): void {
    while (this.range && this.range.offset + this.range.length <= offset) this.range = this.nextRange();
  }

  private nextRange(): { offset: number; length: number } | null {
    for (;;) {
      const next = this.ranges.next();
      if (next.done) return null;
      if (next.value.length > 0) return next.value;
    }
  }
}
