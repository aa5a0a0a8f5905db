/**
 * Digests of the logical (uncompressed) bytes, holes included, computed in the copy's single pass.
 * MD5 and SHA-256 have no shortcut for zeros (unlike the CRC): every byte is hashed.
 */
import { createHash, type Hash } from 'node:crypto';
import type { Extent } from '../extent/extent.js';

export type DigestAlgorithm = 'md5' | 'sha256';

const ZERO_CHUNK = Buffer.alloc(1 << 20);

export class DigestSet {
  private readonly hashes: Map<DigestAlgorithm, Hash>;
  private results: Partial<Record<DigestAlgorithm, string>> | null = null;

  constructor(readonly algorithms: DigestAlgorithm[]) {
    this.hashes = new Map(algorithms.map((a) => [a, createHash(a)]));
  }

  get empty(): boolean {
    return this.hashes.size === 0;
  }

  /** Hashes one extent; call in offset order, before the extent's buffer is released. */
  update(extent: Extent): void {
    if (this.hashes.size === 0) return;
    if (extent.data) {
      for (const h of this.hashes.values()) h.update(extent.data);
      return;
    }
    for (let left = extent.length; left > 0; left -= ZERO_CHUNK.length) {
      const piece = left >= ZERO_CHUNK.length ? ZERO_CHUNK : ZERO_CHUNK.subarray(0, left);
      for (const h of this.hashes.values()) h.update(piece);
    }
  }

  /** Lower-case hex digests, as md5sum/sha256sum print them. */
  digest(): Partial<Record<DigestAlgorithm, string>> {
    if (!this.results) {
      this.results = {};
      for (const [algorithm, h] of this.hashes) this.results[algorithm] = h.digest('hex');
    }
    return this.results;
  }
}
