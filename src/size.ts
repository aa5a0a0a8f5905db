import { ToolError } from './errors.js';

/**
 * The one place user sizes are parsed. Syntax of sparsecopy v0.10: a decimal count of blocks, or a
 * count with a suffix B K M G T P E (powers of 1024; case-insensitive). A trailing "B" or "iB" after
 * the multiplier letter ("2GB", "2GiB") is accepted too, as v0.10 ignored what followed the letter.
 */
const SUFFIX_SHIFT: Record<string, number> = { b: 0, k: 10, m: 20, g: 30, t: 40, p: 50, e: 60 };

export function parseSize(text: string, blockSize: number, what = 'size'): number {
  const m = /^\s*(\d+)\s*(?:([bkmgtpe])(?:i?b)?)?\s*$/i.exec(text);
  if (!m?.[1]) {
    throw new ToolError('USAGE', `bad ${what} '${text}': expected a number of blocks or a number with a suffix B K M G T P E`);
  }
  const count = Number(m[1]);
  const suffix = m[2]?.toLowerCase();
  const bytes = suffix === undefined ? count * blockSize : count * 2 ** (SUFFIX_SHIFT[suffix] ?? 0);
  if (!Number.isSafeInteger(bytes)) {
    throw new ToolError('USAGE', `bad ${what} '${text}': larger than ${Number.MAX_SAFE_INTEGER} bytes`);
  }
  return bytes;
}
