/**
 * A composite extent source: pieces placed at fixed offsets of a larger address space (fsmaker's
 * disk = table sectors + core.img + boot filesystem + rootfs + spare + backup GPT), holes between
 * them, offsets strictly increasing. Pieces are iterated lazily, one after the other, so a rootfs
 * file is streamed (its holes stay holes) and never copied. A composite may cover only part of the
 * address space, [start, totalLength): two such parts cover a disk in the order their pieces are
 * ready (fsmaker writes the rootfs while GRUB's images are still being built).
 */
import type { Extent, ExtentSource } from './extent.js';

export interface Piece {
  /** Where the piece starts in the composite. */
  offset: number;
  /** Bytes the piece occupies; its source must not produce more (checked). */
  length: number;
  /** The piece's own extents, offsets relative to its start; or fixed bytes. */
  source: ExtentSource | Iterable<Extent> | Buffer;
  /** For messages. */
  name: string;
}

function* bufferExtents(data: Buffer): Generator<Extent> {
  if (data.length > 0) yield { offset: 0, length: data.length, data };
}

export async function* concatPieces(pieces: Piece[], totalLength: number, start = 0): AsyncGenerator<Extent> {
  const ordered = [...pieces].sort((a, b) => a.offset - b.offset);
  let position = start;
  for (const piece of ordered) {
    if (piece.offset < position) throw new Error(`composite: piece ${piece.name} at ${piece.offset} overlaps the previous one (ends at ${position})`);
    if (piece.offset + piece.length > totalLength) throw new Error(`composite: piece ${piece.name} ends past the end (${totalLength})`);
    if (piece.offset > position) yield { offset: position, length: piece.offset - position };
    position = piece.offset;
    const source = Buffer.isBuffer(piece.source) ? bufferExtents(piece.source) : piece.source;
    for await (const e of source as AsyncIterable<Extent>) {
      if (e.offset < position - piece.offset || e.offset + e.length > piece.length) {
        throw new Error(`composite: piece ${piece.name} produced bytes ${e.offset}..${e.offset + e.length} outside its ${piece.length} bytes`);
      }
      if (piece.offset + e.offset > position) yield { offset: position, length: piece.offset + e.offset - position };
      yield { ...e, offset: piece.offset + e.offset };
      position = piece.offset + e.offset + e.length;
    }
    // The rest of the piece that its source did not cover reads as zeros.
    if (position < piece.offset + piece.length) {
      yield { offset: position, length: piece.offset + piece.length - position };
      position = piece.offset + piece.length;
    }
  }
  if (position < totalLength) yield { offset: position, length: totalLength - position };
}
