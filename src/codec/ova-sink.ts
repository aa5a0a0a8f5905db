/**
 * The OVA sink: a tar of the .ovf descriptor, the .mf manifest and the streamOptimized VMDK, in
 * that order, written to a file or to a stream.
 *
 * The tar header of the disk member carries its size, and the .ovf before it the VMDK's size and
 * populated size, none of which is known before the whole disk has been compressed. So the VMDK is
 * spooled: written by its own sink into a temporary file in the destination's directory (the
 * temporary directory for a stream), unlinked as soon as it is open, so that nothing of it
 * survives the process however it ends. When the copy ends, the spool is hashed (SHA-256, for the
 * manifest), the .ovf and .mf are made, and the archive is written: the two small members, the
 * disk's header, the spool copied in the kernel (copy_file_range) into a file or read and written
 * into a stream, and the two end blocks. The alternative, two passes over the source (the first to
 * size the VMDK), would need a source that can be read twice, which fsmaker's disk and pipes are
 * not.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Extent } from '../extent/extent.js';
import { ToolError, describeSystemError } from '../errors.js';
import { type OvfOptions, ovaMemberNames, ovfEnvelope, ovfManifest } from '../format/ovf.js';
import { TAR_END_BYTES, tarFileHeader, tarPadding } from '../format/tar.js';
import { copyFileRange } from '../io/ffi.js';
import { readAt, writeAt } from '../io/fd-io.js';
import { copyTempName } from '../io/temp-files.js';
import type { Sink, SinkCounters } from '../sparsecopy/sink.js';

/** The disk format inside: a sink writing one file to `fd`, and what the .ovf says of it. */
export interface SpooledDisk {
  sink: Sink;
  /** Bytes of the disk file written (its size once closed). */
  fileBytes(): number;
  /** Bytes of the virtual disk that hold data (OVF populatedSize). */
  populatedBytes(): number;
}
export type SpooledDiskFactory = (fd: number, name: string) => SpooledDisk;

/** What the .ovf says besides the disk's sizes. */
export type OvaHardware = Pick<OvfOptions, 'cpus' | 'memoryMiB' | 'hardwareVersion' | 'adapterType' | 'firmware'>;

export interface OvaSinkOptions {
  fd: number;
  name: string;
  /** Where the archive starts in a regular file (positional writes); null: a stream. */
  position: number | null;
  /** Names the members and the virtual system: the destination's name without .ova. */
  baseName: string;
  /** Where the spool goes: the destination's directory. */
  spoolDir: string;
  disk: SpooledDiskFactory;
  hardware: OvaHardware;
  /** The virtual disk's size, asked when the copy is complete. */
  capacity: () => number;
  /** The members' mtime (seconds). */
  mtime: number;
  signal?: AbortSignal;
}

/** Reads and writes of the spool: large, one buffer reused. */
const COPY_BYTES = 4 << 20;
/** copy_file_range calls: large enough to cost nothing, small enough that a signal waits little. */
const KERNEL_COPY_BYTES = 64 << 20;

export class OvaSink implements Sink {
  private readonly spoolFd: number;
  private readonly spoolName: string;
  private readonly disk: SpooledDisk;
  private written = 0;
  private spoolOpen = true;

  constructor(private readonly options: OvaSinkOptions) {
    const dir = options.spoolDir;
    const spoolPath = path.join(dir, copyTempName(path.basename(`${options.baseName}-disk1.vmdk`)));
    try {
      this.spoolFd = fs.openSync(spoolPath, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    } catch (err) {
      throw new ToolError('DEST_OPEN', `${options.name}: cannot create the file the VMDK is spooled to in ${dir}: ${describeSystemError(err)}; nothing written`, { cause: err });
    }
    // Gone from the directory at once: only the descriptor holds it, whatever ends the process.
    fs.rmSync(spoolPath, { force: true });
    this.spoolName = `${options.name} (its VMDK, spooled in ${dir})`;
    try {
      this.disk = options.disk(this.spoolFd, this.spoolName);
    } catch (err) {
      this.closeSpool();
      throw err;
    }
  }

  /** Bytes of the archive written so far. */
  get fileBytes(): number {
    return this.written;
  }

  write(extent: Extent): Promise<void> {
    return this.disk.sink.write(extent);
  }

  async close(): Promise<SinkCounters> {
    try {
      const counters = await this.disk.sink.close();
      const diskBytes = this.disk.fileBytes();
      const spooled = fs.fstatSync(this.spoolFd).size;
      if (spooled !== diskBytes) throw new Error(`OvaSink: the disk sink reports ${diskBytes} bytes, its file holds ${spooled}`);
      const diskSha256 = await this.hashSpool(diskBytes);
      const names = ovaMemberNames(this.options.baseName);
      const ovf = Buffer.from(
        ovfEnvelope({
          ...this.options.hardware,
          name: this.options.baseName,
          diskFile: names.disk,
          diskFileBytes: diskBytes,
          capacityBytes: this.options.capacity(),
          populatedBytes: this.disk.populatedBytes(),
        }),
      );
      const manifest = Buffer.from(
        ovfManifest([
          { name: names.ovf, sha256: createHash('sha256').update(ovf).digest('hex') },
          { name: names.disk, sha256: diskSha256 },
        ]),
      );
      const { mtime } = this.options;
      await this.put(
        Buffer.concat([
          ...member(names.ovf, ovf, mtime),
          ...member(names.manifest, manifest, mtime),
          tarFileHeader({ name: names.disk, size: diskBytes, mtime }),
        ]),
      );
      await this.copySpool(diskBytes);
      await this.put(Buffer.alloc(tarPadding(diskBytes) + TAR_END_BYTES));
      return counters;
    } finally {
      this.closeSpool();
    }
  }

  async abort(): Promise<void> {
    try {
      await this.disk.sink.abort();
    } finally {
      this.closeSpool();
    }
  }

  private closeSpool(): void {
    if (!this.spoolOpen) return;
    this.spoolOpen = false;
    fs.closeSync(this.spoolFd);
  }

  private async hashSpool(length: number): Promise<string> {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(Math.min(COPY_BYTES, Math.max(length, 1)));
    for (let at = 0; at < length; ) {
      const got = await this.readSpool(buffer, Math.min(buffer.length, length - at), at);
      hash.update(buffer.subarray(0, got));
      at += got;
    }
    return hash.digest('hex');
  }

  private async readSpool(buffer: Buffer, length: number, at: number): Promise<number> {
    let got: number;
    try {
      got = await readAt(this.spoolFd, buffer, length, at, this.options.signal);
    } catch (err) {
      if (this.options.signal?.aborted && err === this.options.signal.reason) throw err;
      throw new ToolError('WRITE', `${this.spoolName}: read back failed at byte ${at}: ${describeSystemError(err)}`, { cause: err });
    }
    if (got === 0) throw new ToolError('WRITE', `${this.spoolName}: ends at byte ${at}, before the ${length} bytes written`);
    return got;
  }

  /** The spool into the archive: in the kernel into a file, else through one buffer. */
  private async copySpool(length: number): Promise<void> {
    let at = 0;
    if (this.options.position !== null) {
      while (at < length) {
        if (this.options.signal?.aborted) throw this.options.signal.reason;
        let copied: number | null;
        try {
          copied = copyFileRange(this.spoolFd, at, this.options.fd, this.options.position + this.written, Math.min(KERNEL_COPY_BYTES, length - at));
        } catch (err) {
          throw this.writeError(err, 0);
        }
        if (copied === null) break; // not here: read and write
        if (copied === 0) throw new ToolError('WRITE', `${this.spoolName}: ends at byte ${at}, before the ${length} bytes written`);
        at += copied;
        this.written += copied;
        // Let a signal be handled between the (synchronous) calls.
        await new Promise(setImmediate);
      }
    }
    const buffer = at < length ? Buffer.allocUnsafe(Math.min(COPY_BYTES, length - at)) : null;
    while (buffer && at < length) {
      const got = await this.readSpool(buffer, Math.min(buffer.length, length - at), at);
      await this.put(buffer.subarray(0, got));
      at += got;
    }
  }

  private async put(data: Buffer): Promise<void> {
    const { fd, position, signal } = this.options;
    try {
      await writeAt(fd, data, position === null ? null : position + this.written, signal);
    } catch (err) {
      if (signal?.aborted && err === signal.reason) throw err;
      throw this.writeError(err, (err as { bytesWritten?: number }).bytesWritten ?? 0);
    }
    this.written += data.length;
  }

  private writeError(err: unknown, accepted: number): ToolError {
    return new ToolError('WRITE', `${this.options.name}: write failed at byte ${(this.options.position ?? 0) + this.written + accepted}: ${describeSystemError(err)}`, { cause: err });
  }
}

/** A small member: its header, its bytes, its padding. */
function member(name: string, data: Buffer, mtime: number): Buffer[] {
  return [tarFileHeader({ name, size: data.length, mtime }), data, Buffer.alloc(tarPadding(data.length))];
}


