/**
 * The disk an OVA holds, written into the OVA sink's spool.
 *
 * STAND-IN until the streamOptimized VMDK sink (codec/vmdk-stream-sink.ts) is merged: the raw
 * bytes of the disk, through the plain stream sink, so that the archive's mechanics (spool,
 * hashes, tar members, OVF sizes) are exercised end to end. The .ovf still names the
 * streamOptimized format: an OVA written with this stand-in is not importable.
 */
import type { Extent } from '../extent/extent.js';
import { StreamSink } from '../sparsecopy/stream-sink.js';
import type { Sink, SinkCounters } from '../sparsecopy/sink.js';
import type { SpooledDisk, SpooledDiskFactory } from './ova-sink.js';
import type { OvaOutputOptions } from '../format/output-formats.js';

export function ovaDiskFactory(_ova: OvaOutputOptions, signal?: AbortSignal): SpooledDiskFactory {
  return (fd, name) => rawSpooledDisk(fd, name, signal);
}

/** A VMDK's grain: populated sizes count whole grains, whatever pieces the data came in. */
const GRAIN_BYTES = 64 << 10;

/** The raw disk as a spooled file (zeros written as zeros): a stand-in, and a test double. */
export function rawSpooledDisk(fd: number, name: string, signal?: AbortSignal): SpooledDisk {
  const inner = new StreamSink(fd, name, signal);
  let end = 0;
  let grains = 0;
  let lastGrain = -1;
  const sink: Sink = {
    write: (extent: Extent) => {
      end = extent.offset + extent.length;
      if (extent.data && extent.length > 0) {
        const first = Math.max(lastGrain + 1, Math.floor(extent.offset / GRAIN_BYTES));
        lastGrain = Math.floor((end - 1) / GRAIN_BYTES);
        grains += Math.max(0, lastGrain - first + 1);
      }
      return inner.write(extent);
    },
    close: (): Promise<SinkCounters> => inner.close(),
    abort: () => inner.abort(),
  };
  return { sink, fileBytes: () => end, populatedBytes: () => grains * GRAIN_BYTES };
}
