/**
 * GUIDs as GPT stores them: 16 bytes in the "mixed-endian" order of the UEFI spec (and of
 * Microsoft's GUID struct). The text form "AABBCCDD-EEFF-GGHH-IIJJ-KKLLMMNNOOPP" maps to bytes as:
 *
 *   text field   bytes  on-disk order
 *   AABBCCDD     0..3   little-endian (DD CC BB AA)
 *   EEFF         4..5   little-endian (FF EE)
 *   GGHH         6..7   little-endian (HH GG)
 *   IIJJ         8..9   as written    (II JJ)
 *   KK..PP      10..15  as written
 *
 * Text is printed upper case, as sfdisk prints it.
 */
import { crypto } from '../builtins.js';

export const GUID_BYTES = 16;
export const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `text` is a GUID in the 8-4-4-4-12 hex form (either case). */
export function isGuid(text: string): boolean {
  return GUID_RE.test(text);
}

/** The 16 on-disk bytes of a GUID given as text. Throws on malformed text. */
export function guidToBytes(text: string): Buffer {
  if (!isGuid(text)) throw new Error(`not a GUID: "${text}" (expected 8-4-4-4-12 hex digits)`);
  const hex = text.replace(/-/g, '');
  const b = Buffer.from(hex, 'hex');
  // The first three fields are little-endian on disk: reverse them in place.
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

/** Writes the GUID `text` into `target` at `offset` (16 bytes). */
export function writeGuid(target: Buffer, offset: number, text: string): void {
  guidToBytes(text).copy(target, offset);
}

/** The text form (upper case) of the 16 on-disk bytes at `offset` of `source`. */
export function guidFromBytes(source: Uint8Array, offset = 0): string {
  if (offset < 0 || offset + GUID_BYTES > source.length) {
    throw new RangeError(`GUID at byte ${offset} is past the end of a ${source.length}-byte buffer`);
  }
  const b = Buffer.from(source.subarray(offset, offset + GUID_BYTES));
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  const h = b.toString('hex').toUpperCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Whether the 16 bytes at `offset` are all zero (an unused GPT entry has a zero type GUID). */
export function isZeroGuid(source: Uint8Array, offset = 0): boolean {
  for (let i = offset; i < offset + GUID_BYTES; i++) if (source[i] !== 0) return false;
  return true;
}

/** A random (version 4, RFC 4122 variant) GUID, upper case, from the system CSPRNG. */
export function randomGuid(): string {
  return crypto().randomUUID().toUpperCase();
}

/** Upper-cases a GUID after validating it. */
export function normalizeGuid(text: string): string {
  if (!isGuid(text)) throw new Error(`not a GUID: "${text}" (expected 8-4-4-4-12 hex digits)`);
  return text.toUpperCase();
}
