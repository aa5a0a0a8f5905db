/**
 * A sink that writes a flat VMDK (monolithicFlat, twoGbMaxExtentFlat): the descriptor text into
 * the destination file, and the disk's bytes into raw extent files beside it, named as qemu names
 * them (format/vmdk-writer.ts flatExtents). Each extent is a sparse file: only blocks with data are
 * written, holes stay holes, and its length is set at the end.
 *
 * Extents are written under temporary names (registered for removal at exit) and renamed into
 * place by commit(), which the copy calls with the destination's own commit; discard() removes
 * them. So a failed or interrupted copy leaves nothing, as for any destination.
 *
 * The descriptor is written at close, when the disk's size is known (a stream of unknown length
 * is fine).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ToolError, describeSystemError } from '../errors.js';
import type { Extent } from '../extent/extent.js';
import { findRuns } from '../extent/zero-runs.js';
import { type VmdkAdapterType, contentId, vmdkDescriptorText } from '../format/vmdk-descriptor-text.js';
import { SECTOR } from '../format/vmdk-header.js';
import { FLAT_SPLIT_BYTES, type FlatExtent, capacitySectorsFor, flatExtents } from '../format/vmdk-writer.js';
import { registerExitCleanup, unregisterExitCleanup } from '../io/exit-cleanup.js';
import { copyTempName } from '../io/temp-files.js';
import { writeAllSync } from '../io/write-sync.js';
import { type Sink, type SinkCounters, newCounters } from '../sparsecopy/sink.js';

export interface VmdkFlatSinkOptions {
  /** The descriptor file (a new, empty file under a temporary name). */
  fd: number;
  /** The destination as named: messages, and where its extents go (beside it, named from its base name). */
  name: string;
  split: boolean;
  /** The virtual disk's size, when known; else where the extents end. */
  capacityBytes?: number;
  adapterType: VmdkAdapterType;
  hwVersion?: string;
}

/** Zero blocks this large are left as holes in an extent file (a filesystem block). */
const HOLE_BLOCK_BYTES = 4096;

interface OpenExtent {
  fd: number;
  tempPath: string;
  finalPath: string;
}

export class VmdkFlatSink implements Sink {
  private readonly counters = newCounters();
  private readonly dir: string;
  private readonly base: string;
  private total = 0;
  /** Extent files created so far, by index (each 2 GiB of the disk when split). */
  private readonly files: OpenExtent[] = [];
  private committed = false;

  constructor(private readonly options: VmdkFlatSinkOptions) {
    this.dir = path.dirname(options.name);
    this.base = path.basename(options.name);
  }

  async write(extent: Extent): Promise<void> {
    try {
      if (extent.offset < this.total) throw new Error(`VmdkFlatSink: extent at ${extent.offset} goes back before ${this.total}`);
      const end = extent.offset + extent.length;
      if (!extent.data) {
        this.counters.sparse += extent.length;
      } else {
        for (const run of findRuns(extent.data, extent.offset, HOLE_BLOCK_BYTES)) {
          if (!run.data) {
            this.counters.sparse += run.length;
            continue;
          }
          this.counters.real += run.length;
          this.counters.written += run.length;
          this.place(run.offset, run.data);
        }
      }
      this.total = end;
    } finally {
      extent.release?.();
    }
  }

  async close(): Promise<SinkCounters> {
    const capacitySectors = capacitySectorsFor(this.options.capacityBytes ?? this.total);
    const extents = flatExtents(this.base, capacitySectors, this.options.split);
    extents.forEach((e, i) => {
      const file = this.fileFor(i, extents);
      try {
        fs.ftruncateSync(file.fd, e.bytes);
      } catch (err) {
        throw new ToolError('TRUNCATE', `${file.finalPath}: cannot set length to ${e.bytes}: ${describeSystemError(err)}`, { cause: err });
      }
    });
    const text = vmdkDescriptorText({
      createType: this.options.split ? 'twoGbMaxExtentFlat' : 'monolithicFlat',
      cid: contentId(capacitySectors),
      extents: extents.map((e) => ({ sectors: e.bytes / SECTOR, type: 'FLAT' as const, fileName: e.fileName })),
      capacitySectors,
      adapterType: this.options.adapterType,
      hwVersion: this.options.hwVersion ?? '4',
    });
    try {
      writeAllSync(this.options.fd, [Buffer.from(text, 'utf8')], 0);
    } catch (err) {
      throw new ToolError('WRITE', `${this.options.name}: write failed at byte 0: ${describeSystemError(err)}`, { cause: err });
    }
    for (const file of this.files) this.closeFile(file);
    return { ...this.counters };
  }

  async abort(): Promise<void> {
    this.discard();
  }

  /** Renames every extent file into place (synchronous: called with the descriptor's own commit). */
  commit(): void {
    for (const file of this.files) {
      try {
        fs.renameSync(file.tempPath, file.finalPath);
      } catch (err) {
        throw new ToolError('DEST_OPEN', `${file.finalPath}: cannot rename the finished extent into place: ${describeSystemError(err)}`, { cause: err });
      } finally {
        unregisterExitCleanup(file.tempPath);
      }
    }
    this.committed = true;
  }

  /** Removes the extent files not committed. */
  discard(): void {
    if (this.committed) return;
    for (const file of this.files) {
      this.closeFile(file);
      fs.rmSync(file.tempPath, { force: true });
      unregisterExitCleanup(file.tempPath);
    }
    this.files.length = 0;
  }

  /** Data at guest byte `offset`, into the extent file(s) that hold it. */
  private place(offset: number, data: Buffer): void {
    for (let done = 0; done < data.length; ) {
      const at = offset + done;
      const index = this.options.split ? Math.floor(at / FLAT_SPLIT_BYTES) : 0;
      const start = this.options.split ? index * FLAT_SPLIT_BYTES : 0;
      const n = this.options.split ? Math.min(data.length - done, start + FLAT_SPLIT_BYTES - at) : data.length - done;
      const file = this.fileFor(index, null);
      try {
        writeAllSync(file.fd, [data.subarray(done, done + n)], at - start);
      } catch (err) {
        throw new ToolError('WRITE', `${file.finalPath}: write failed at byte ${at - start}: ${describeSystemError(err)}`, { cause: err });
      }
      done += n;
    }
  }

  /** Extent file `index` (and every one before it: they exist even when all holes), created on first use. */
  private fileFor(index: number, extents: FlatExtent[] | null): OpenExtent {
    while (this.files.length <= index) {
      const i = this.files.length;
      const fileName = (extents ?? flatExtents(this.base, (i + 1) * (FLAT_SPLIT_BYTES / SECTOR), this.options.split))[i]!.fileName;
      this.files.push(this.createTemp(fileName));
    }
    return this.files[index]!;
  }

  private createTemp(fileName: string): OpenExtent {
    const finalPath = path.join(this.dir, fileName);
    for (let attempt = 0; ; attempt++) {
      const tempPath = path.join(this.dir, copyTempName(fileName));
      try {
        const fd = fs.openSync(tempPath, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o666 & ~process.umask());
        registerExitCleanup(tempPath);
        return { fd, tempPath, finalPath };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST' && attempt < 16) continue;
        throw new ToolError('DEST_OPEN', `${finalPath}: cannot create extent file: ${describeSystemError(err)}`, { cause: err });
      }
    }
  }

  private closeFile(file: OpenExtent): void {
    if (file.fd < 0) return;
    fs.closeSync(file.fd);
    file.fd = -1;
  }
}
