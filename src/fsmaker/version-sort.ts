/**
 * Version order as grub-mkconfig sorts kernels: its version_sort is `sort -V`, GNU's filevercmp
 * (gnulib lib/filevercmp.c, reimplemented from its documented rules): runs of non-digits compare
 * character by character with letters before other characters and '~' before everything, even
 * the end of the string ("6.1~rc1" < "6.1"); runs of digits compare as numbers; a trailing file
 * suffix (".gz", ".old"...) is compared only when the rest is equal. Ties fall back to the bytes,
 * as sort's last-resort comparison does.
 */

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isAlpha = (c: number): boolean => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isAlnum = (c: number): boolean => isDigit(c) || isAlpha(c);
const TILDE = 0x7e;
const DOT = 0x2e;

/** The weight of a non-digit character: '~' lowest, then (the end of the run), letters, the rest. */
function order(c: number): number {
  if (isDigit(c)) return 0;
  if (isAlpha(c)) return c;
  if (c === TILDE) return -1;
  return c + 256;
}

/** Where the name stops and its suffixes ((\.[A-Za-z~][A-Za-z0-9~]*)*$) start. */
function prefixLength(s: Buffer): number {
  const n = s.length;
  let prefix = 0;
  let i = 0;
  for (;;) {
    while (i + 1 < n && s[i] === DOT && (isAlpha(s[i + 1]!) || s[i + 1] === TILDE)) {
      for (i += 2; i < n && (isAlnum(s[i]!) || s[i] === TILDE); i++);
    }
    if (i >= n) return prefix;
    i++;
    prefix = i;
  }
}

function compareRuns(a: Buffer, alen: number, b: Buffer, blen: number): number {
  let i = 0;
  let j = 0;
  while (i < alen || j < blen) {
    while ((i < alen && !isDigit(a[i]!)) || (j < blen && !isDigit(b[j]!))) {
      const ca = i < alen ? order(a[i]!) : 0;
      const cb = j < blen ? order(b[j]!) : 0;
      if (ca !== cb) return ca - cb;
      i++;
      j++;
    }
    while (i < alen && a[i] === 0x30) i++;
    while (j < blen && b[j] === 0x30) j++;
    let firstDiff = 0;
    while (i < alen && j < blen && isDigit(a[i]!) && isDigit(b[j]!)) {
      if (firstDiff === 0) firstDiff = a[i]! - b[j]!;
      i++;
      j++;
    }
    if (i < alen && isDigit(a[i]!)) return 1;
    if (j < blen && isDigit(b[j]!)) return -1;
    if (firstDiff !== 0) return firstDiff;
  }
  return 0;
}

/** filevercmp: negative, zero or positive as `a` sorts before, with or after `b`. */
export function fileVersionCompare(a: string, b: string): number {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  if (x.length === 0 || y.length === 0) return x.length === 0 ? (y.length === 0 ? 0 : -1) : 1;
  // "." first, then "..", then other hidden names, then the rest.
  const dots = (s: Buffer): number => (s.length === 1 && s[0] === DOT ? 0 : s.length === 2 && s[0] === DOT && s[1] === DOT ? 1 : s[0] === DOT ? 2 : 3);
  const dx = dots(x);
  const dy = dots(y);
  if (dx !== dy) return dx - dy;
  if (dx < 2) return 0;
  const xs = x;
  const ys = y;
  const xp = prefixLength(xs);
  const yp = prefixLength(ys);
  const result = compareRuns(xs, xp, ys, yp);
  if (result !== 0 || (xp === xs.length && yp === ys.length)) return result;
  return compareRuns(xs, xs.length, ys, ys.length);
}

/** `sort -V`'s order: filevercmp, then the bytes. */
export function versionSortCompare(a: string, b: string): number {
  return fileVersionCompare(a, b) || Buffer.compare(Buffer.from(a), Buffer.from(b));
}
