/**
 * --backing BASE: the backing file of a qcow2 output, opened by the input code (so BASE may be raw
 * or a qcow2 with a backing chain of its own, probed from its first bytes) and checked before
 * anything is written. The name is stored as the user gave it; a relative one is found from the
 * output image's directory, as qemu resolves it when it opens the image (and as qemu-img convert
 * -B checks it).
 */
import path from 'node:path';
import { ToolError } from '../errors.js';
import type { Qcow2SinkBacking } from '../codec/qcow2-sink.js';
import { FORMAT_DESCRIPTIONS } from '../format/identify.js';
import { exactLength } from '../format/chain.js';
import { MAX_BACKING_NAME_BYTES } from '../format/qcow2-writer.js';
import { backingPath } from '../format/qcow2-layer.js';
import type { OpenedInput } from '../io/target.js';
import { type OpenedSource, openSource } from './source.js';

export interface OpenedBacking extends Qcow2SinkBacking {
  /** Where it was found (the stored name resolved from the destination's directory). */
  path: string;
  /** The files it reads: BASE and its own backing files (none may be the destination). */
  files: OpenedInput[];
  close(): Promise<void>;
}

/** Where qemu will look for BASE: from the output image's directory (stdout: the current one). */
export const backingLocation = (destination: string, base: string): string => (destination === '-' ? path.resolve(base) : backingPath(destination, base));

/** Opens BASE for a qcow2 written to `destination`, refusing what qemu could not use as its backing file. */
export async function openBacking(base: string, destination: string, chunkBytes: number): Promise<OpenedBacking> {
  if (Buffer.byteLength(base, 'utf8') > MAX_BACKING_NAME_BYTES || base.length === 0) {
    throw new ToolError('USAGE', `--backing ${base}: a qcow2 stores a backing file name of 1 to ${MAX_BACKING_NAME_BYTES} bytes`);
  }
  const where = backingLocation(destination, base);
  const shown = where === base ? base : `${base} (${where}, from the directory of ${destination})`;
  let source: OpenedSource;
  try {
    source = await openSource(where, { chunkBytes });
  } catch (err) {
    if (!(err instanceof ToolError) || err.code !== 'SOURCE_OPEN') throw err;
    // "PATH: cannot open source: reason": the reason, told of BASE.
    const reason = err.message.replace(/^.*?: cannot open source: /, '');
    throw new ToolError('SOURCE_OPEN', `--backing ${shown}: cannot open the backing file: ${reason}; nothing written`, { cause: err });
  }
  try {
    const { layer } = source;
    const format = layer.formats.length === 0 || (layer.formats.length === 1 && layer.formats[0] === 'iso9660') ? 'raw' : layer.formats.join() === 'qcow2' ? 'qcow2' : null;
    const size = exactLength(layer.length);
    if (format === null || !layer.readAt || !layer.mayHoldData || size === null || !source.transport?.seekable) {
      const what = layer.formats.length > 0 ? layer.formats.map((f) => FORMAT_DESCRIPTIONS[f]).join(' inside ') : 'not a file or a block device';
      throw new ToolError('UNSUPPORTED_FORMAT', `--backing ${shown}: ${what}; a qcow2's backing file must be a raw or qcow2 image qemu reads at any offset; nothing written`);
    }
    const { readAt, mayHoldData } = layer;
    return {
      name: base,
      format,
      virtualSize: size,
      disk: { readAt, mayHoldData: (start) => mayHoldData(start) },
      path: where,
      files: [source.transport, ...source.alsoReads],
      close: () => source.close(),
    };
  } catch (err) {
    await source.close();
    throw err;
  }
}
