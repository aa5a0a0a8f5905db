/**
 * Choosing and finishing the sink for a destination: a sparse file, a block device, a byte stream,
 * a compressed stream (gzip, zstd, xz, bzip2) in a file or on stdout, a qcow2 image, or a VMDK.
 */
import { Qcow2StreamSink } from '../codec/qcow2-stream-sink.js';
import type { ClusterMap } from '../format/qcow2-stream-layout.js';
import { ToolError, describeSystemError } from '../errors.js';
import { isZeroRange } from '../extent/zero-runs.js';
import { ChildEncoderSink } from '../codec/child-encoder-sink.js';
import { GzipSink } from '../codec/gzip-sink.js';
import { Qcow2Sink } from '../codec/qcow2-sink.js';
import { ZstdSink } from '../codec/zstd-sink.js';
import { VmdkFlatSink } from '../codec/vmdk-flat-sink.js';
import { VmdkMonolithicSink } from '../codec/vmdk-monolithic-sink.js';
import { VmdkStreamSink } from '../codec/vmdk-stream-sink.js';
import os from 'node:os';
import path from 'node:path';
import { OvaSink, type SpooledDiskFactory } from '../codec/ova-sink.js';
import { ovaMemberNames } from '../format/ovf.js';
import { memberMtime } from '../format/tar.js';
import { capacitySectorsFor } from '../format/vmdk-writer.js';
import { fdatasync, ftruncate, readAt } from '../io/fd-io.js';
import { ERRNO, rereadPartitionTable } from '../io/ffi.js';
import type { OpenedDestination } from './destination.js';
import type { SparseCopyOptions } from './options.js';
import { type CopyPlan, paddingFor } from './plan.js';
import { PositionalSink } from './positional-sink.js';
import type { Sink } from './sink.js';
import { StreamSink } from './stream-sink.js';

const BLKRRPART_RETRIES = 40;
const BLKRRPART_RETRY_MS = 250;

export interface ChosenSink {
  sink: Sink;
  /** Bytes written when they differ from the logical bytes (compressed output), else null. */
  bytesWritten: () => number | null;
}

/** The sink of the plan's output format on its destination. */
export function makeSink(plan: CopyPlan, endOffset: () => number, clusterMap: ClusterMap | null = null): ChosenSink {
  const { dest, options, output } = plan;
  const position = dest.kind === 'file' ? 0 : null;
  switch (output.format.name) {
    case 'gzip': {
      const sink = new GzipSink({ fd: dest.fd, name: dest.name, level: output.level ?? undefined, position, signal: options.signal });
      return { sink, bytesWritten: () => sink.compressedBytes };
    }
    case 'zstd': {
      const sink = new ZstdSink({ fd: dest.fd, name: dest.name, level: output.level ?? undefined, position });
      return { sink, bytesWritten: () => sink.compressedBytes };
    }
    case 'xz':
    case 'bzip2': {
      const tool = output.format.tool!;
      const xz = output.format.name === 'xz';
      const args = xz ? ['-c', '-q', '-T0', `-${output.level}`] : ['-c', `-${output.level}`];
      const zeroUnitArgs = xz ? ['-c', '-q', '-0'] : ['-c', '-9'];
      const sink = new ChildEncoderSink({ command: tool.command, args, zeroUnitArgs, fd: dest.fd, name: dest.name, label: output.format.label });
      return { sink, bytesWritten: () => sink.compressedBytes() };
    }
    case 'qcow2': {
      const { clusterBits, compress } = output.qcow2!;
      const backing = plan.backing ?? undefined;
      if (clusterMap) {
        // A stream (plan.twoPasses): the first pass's map lays it out metadata first.
        const sink = new Qcow2StreamSink({ fd: dest.fd, name: dest.name, sourceName: plan.source.layer.name, clusterBits, map: clusterMap, signal: options.signal, ...(backing ? { backing } : {}) });
        return { sink, bytesWritten: () => sink.fileBytes };
      }
      // Else the plan refused every destination but a new regular file (needs.seekable).
      const sink = new Qcow2Sink({ fd: dest.fd, name: dest.name, clusterBits, compress, virtualSize: endOffset, writerThread: plan.writerThread, ...(backing ? { backing } : {}) });
      return { sink, bytesWritten: () => sink.fileBytes };
    }
    case 'vmdk':
      return vmdkSink(plan);
    case 'ova':
      return ovaSink(plan, endOffset);
    case 'raw':
      break;
  }
  if (dest.kind === 'stream') return { sink: new StreamSink(dest.fd, dest.name, options.signal), bytesWritten: () => null };
  const finish = dest.kind === 'file' ? () => setFinalLength(dest, options, endOffset()) : () => flushDevice(dest, options.onWarning);
  const sink = new PositionalSink({
    fd: dest.fd,
    name: dest.name,
    baseOffset: plan.seekBytes,
    checkLimit: dest.oldLength,
    zeroPolicy: options.zeroPolicy ?? 'compare',
    blockSize: plan.blockSize,
    syncEveryBytes: options.syncEveryBytes ?? 0,
    capacity: dest.capacity,
    directFd: dest.directFd,
    directAlignment: Math.max(512, dest.sectorSize),
    writerThread: plan.writerThread,
    holeUnit: dest.holeUnit,
    finish,
  });
  return { sink, bytesWritten: () => null };
}

/** What a streamOptimized VMDK on stdout calls itself in its extent line (a file or a FIFO: its own name). */
export const VMDK_STDOUT_FILE_NAME = 'disk.vmdk';

/**
 * A VMDK of the plan's subformat. The capacity is the copy's length when known (with --pad's
 * zeros); the plan has refused what a subformat cannot take (a stream of unknown length for
 * streamOptimized on a stream and for monolithicSparse; a stream or a device for all but
 * streamOptimized).
 */
function vmdkSink(plan: CopyPlan): ChosenSink {
  const { dest, options } = plan;
  const { subformat, adapterType } = plan.output.vmdk!;
  const capacity = plan.length === null ? undefined : plan.length + paddingFor(plan.length, options.padBytes);
  const capacityBytes = capacity === undefined ? {} : { capacityBytes: capacity };
  switch (subformat) {
    case 'streamOptimized': {
      const fileName = options.destination === '-' ? VMDK_STDOUT_FILE_NAME : undefined;
      const position = dest.kind === 'file' ? 0 : null;
      const sink = new VmdkStreamSink({ fd: dest.fd, name: dest.name, position, adapterType, signal: options.signal, ...capacityBytes, ...(fileName ? { fileName } : {}) });
      return { sink, bytesWritten: () => sink.fileBytes };
    }
    case 'monolithicSparse': {
      const sink = new VmdkMonolithicSink({ fd: dest.fd, name: dest.name, capacityBytes: capacity!, adapterType });
      return { sink, bytesWritten: () => sink.fileBytes };
    }
    case 'monolithicFlat':
    case 'twoGbMaxExtentFlat': {
      const sink = new VmdkFlatSink({ fd: dest.fd, name: dest.name, split: subformat === 'twoGbMaxExtentFlat', adapterType, ...capacityBytes });
      // The extents are part of the destination: renamed into place with it, removed with it.
      const { commit, discard } = dest;
      dest.commit = () => {
        sink.commit();
        commit();
      };
      dest.discard = () => {
        sink.discard();
        discard();
      };
      return { sink, bytesWritten: () => null };
    }
  }
}

/**
 * An OVA: its streamOptimized VMDK spooled beside a file (the same filesystem: copied in the
 * kernel), or in $TMPDIR for a stream, then the archive (codec/ova-sink.ts). The VMDK's capacity is
 * the copy's length when known, else it is settled when the spool closes (a file: its header is
 * rewritten); the OVF says the VMDK's capacity, a whole number of sectors.
 */
function ovaSink(plan: CopyPlan, endOffset: () => number): ChosenSink {
  const { dest, options } = plan;
  const ova = plan.output.ova!;
  const baseName = ovaBaseName(options.destination);
  const capacity = plan.length === null ? undefined : plan.length + paddingFor(plan.length, options.padBytes);
  const disk: SpooledDiskFactory = (fd, name) => {
    const vmdk = new VmdkStreamSink({ fd, name, fileName: ovaMemberNames(baseName).disk, position: 0, adapterType: ova.adapterType, signal: options.signal, ...(capacity === undefined ? {} : { capacityBytes: capacity }) });
    return { sink: vmdk, fileBytes: () => vmdk.fileBytes, populatedBytes: () => vmdk.populatedBytes };
  };
  const sink = new OvaSink({
    fd: dest.fd,
    name: dest.name,
    position: dest.kind === 'file' ? 0 : null,
    baseName,
    spoolDir: dest.directory ?? os.tmpdir(),
    disk,
    hardware: ova,
    capacity: () => capacitySectorsFor(capacity ?? endOffset()) * 512,
    mtime: memberMtime(),
    signal: options.signal,
  });
  return { sink, bytesWritten: () => sink.fileBytes };
}

/** An OVA's members and virtual system are named after it: "web.ova" holds web.ovf, web.mf, web-disk1.vmdk. */
function ovaBaseName(destination: string): string {
  const base = destination === '-' ? '' : path.basename(destination).replace(/\.ova$/i, '');
  return base === '' || base.startsWith('.') ? 'appliance' : base;
}

/** lseek past the end does not extend a file: set the length explicitly, as v0.10 did. */
async function setFinalLength(dest: OpenedDestination, options: SparseCopyOptions, end: number): Promise<void> {
  const length = options.finalSize ?? Math.max(end, dest.oldLength);
  try {
    await ftruncate(dest.fd, length);
  } catch (err) {
    throw new ToolError('TRUNCATE', `${dest.name}: cannot set length to ${length}: ${describeSystemError(err)}`, { cause: err });
  }
}

async function flushDevice(dest: OpenedDestination, warn?: (message: string) => void): Promise<void> {
  try {
    await fdatasync(dest.fd);
  } catch (err) {
    throw new ToolError('WRITE', `${dest.name}: flush failed: ${describeSystemError(err)}`, { cause: err });
  }
  await rereadPartitions(dest, warn);
}

/**
 * BLKRRPART on the descriptor we still hold (v0.10 closed it first, so its re-read never
 * happened), retried while the kernel says EBUSY. A device that cannot re-read (a loop device
 * without partition scanning answers EINVAL, a partition answers EINVAL too) is reported only.
 */
async function rereadPartitions(dest: OpenedDestination, warn?: (message: string) => void): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const result = rereadPartitionTable(dest.fd);
    if (result.ok) return;
    if (result.errno === ERRNO.EBUSY && attempt < BLKRRPART_RETRIES) {
      await new Promise((r) => setTimeout(r, BLKRRPART_RETRY_MS));
      continue;
    }
    const why = result.errno === ERRNO.EBUSY ? 'device busy' : result.errno === ERRNO.EINVAL ? 'not supported by this device (EINVAL)' : `errno ${result.errno}`;
    warn?.(`${dest.name}: partition table not re-read: ${why}`);
    return;
  }
}

const CHECK_READ_BYTES = 1 << 20;

/** -c: refuse unless the destination block where writing starts is zero (read a MiB at a time: -b 4G is no buffer size). */
export async function checkFirstBlock(dest: OpenedDestination, seekBytes: number, blockSize: number): Promise<void> {
  if (dest.kind === 'stream' || seekBytes >= dest.oldLength) return;
  const end = Math.min(seekBytes + blockSize, dest.oldLength);
  const buffer = Buffer.alloc(Math.min(CHECK_READ_BYTES, end - seekBytes));
  for (let at = seekBytes; at < end; ) {
    let got: number;
    try {
      got = await readAt(dest.fd, buffer, Math.min(buffer.length, end - at), at);
    } catch (err) {
      throw new ToolError('DEST_CHECK_READ', `${dest.name}: check read failed at byte ${at}: ${describeSystemError(err)}`, { cause: err });
    }
    if (!isZeroRange(buffer, 0, got)) {
      throw new ToolError('FIRST_BLOCK_NOT_ZERO', `${dest.name}: first block at byte ${seekBytes} is not zero; nothing written`);
    }
    if (got === 0) return; // the destination ended
    at += got;
  }
}
