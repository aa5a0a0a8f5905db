/**
 * Digests of the logical (uncompressed) bytes, holes included, computed in the copy's single pass.
 * MD5 and SHA-256 have no shortcut for zeros (unlike the CRC): every byte is hashed, at about
 * 650 MiB/s for MD5 here, which on the main thread would double the time of a gz -> disk copy.
 * So hashing runs on a worker thread: data is copied into a ring of slots in shared memory (a
 * memcpy, far cheaper than the hash) and the worker hashes the slots in order while the main
 * thread goes on scanning and writing; holes are sent as lengths and hashed from the worker's own
 * zero buffer.
 */
import type { Worker } from 'node:worker_threads';
import { workerThreads } from '../builtins.js';
import type { Extent } from '../extent/extent.js';

export type DigestAlgorithm = 'md5' | 'sha256';

const SLOT_BYTES = 1 << 20;
const SLOTS = 8;

/** The worker, as CommonJS source (evaluated: nothing to locate next to a bundled command). */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = workerData.algorithms.map((a) => createHash(a));
const ring = new Uint8Array(workerData.ring);
const zeros = new Uint8Array(1 << 20);
parentPort.on('message', (m) => {
  if (m.type === 'data') {
    const view = ring.subarray(m.offset, m.offset + m.length);
    for (const h of hashes) h.update(view);
    parentPort.postMessage({ type: 'free', slot: m.slot });
  } else if (m.type === 'zeros') {
    for (let left = m.length; left > 0; left -= zeros.length) {
      const piece = left >= zeros.length ? zeros : zeros.subarray(0, left);
      for (const h of hashes) h.update(piece);
    }
  } else if (m.type === 'end') {
    parentPort.postMessage({ type: 'result', digests: hashes.map((h) => h.digest('hex')) });
  }
});
`;

type Message = { type: 'free'; slot: number } | { type: 'result'; digests: string[] };

export class DigestSet {
  private readonly worker: Worker | null;
  private readonly ring: Uint8Array | null;
  private readonly freeSlots: number[] = [];
  private waitingForSlot: (() => void) | null = null;
  private result: Promise<Partial<Record<DigestAlgorithm, string>>> | null = null;
  private resolveResult: ((digests: string[]) => void) | null = null;
  private failure: Error | null = null;

  constructor(readonly algorithms: DigestAlgorithm[]) {
    if (algorithms.length === 0) {
      this.worker = null;
      this.ring = null;
      return;
    }
    const shared = new SharedArrayBuffer(SLOT_BYTES * SLOTS);
    this.ring = new Uint8Array(shared);
    for (let i = 0; i < SLOTS; i++) this.freeSlots.push(i);
    this.worker = new (workerThreads().Worker)(WORKER_SOURCE, { eval: true, workerData: { algorithms, ring: shared } });
    this.worker.unref();
    this.worker.on('message', (m: Message) => {
      if (m.type === 'free') {
        this.freeSlots.push(m.slot);
        const wake = this.waitingForSlot;
        this.waitingForSlot = null;
        wake?.();
      } else {
        this.resolveResult?.(m.digests);
      }
    });
    this.worker.on('error', (err) => {
      this.failure = err;
      this.waitingForSlot?.();
    });
  }

  get empty(): boolean {
    return this.worker === null;
  }

  private async slot(): Promise<number> {
    while (this.freeSlots.length === 0) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.waitingForSlot = resolve));
    }
    return this.freeSlots.pop()!;
  }

  /** Queues one extent for hashing; call in offset order. The extent's buffer is free on return. */
  async update(extent: Extent): Promise<void> {
    if (!this.worker || !this.ring) return;
    if (!extent.data) {
      this.worker.postMessage({ type: 'zeros', length: extent.length });
      return;
    }
    for (let done = 0; done < extent.data.length; ) {
      const slot = await this.slot();
      const length = Math.min(SLOT_BYTES, extent.data.length - done);
      const offset = slot * SLOT_BYTES;
      this.ring.set(extent.data.subarray(done, done + length), offset);
      this.worker.postMessage({ type: 'data', slot, offset, length });
      done += length;
    }
  }

  /** Lower-case hex digests, as md5sum/sha256sum print them. */
  digest(): Promise<Partial<Record<DigestAlgorithm, string>>> {
    if (!this.worker) return Promise.resolve({});
    this.result ??= new Promise<string[]>((resolve, reject) => {
      this.resolveResult = resolve;
      if (this.failure) reject(this.failure);
      this.worker!.once('error', reject);
      this.worker!.postMessage({ type: 'end' });
    }).then((hexes) => {
      void this.worker!.terminate();
      return Object.fromEntries(this.algorithms.map((a, i) => [a, hexes[i]!]));
    });
    return this.result;
  }

  /** Stops the worker without a result (the copy failed). */
  dispose(): void {
    void this.worker?.terminate();
  }
}
