/**
 * Linux swap and hibernation images: the magic sits in the last 10 bytes of the first page, for
 * each page size libblkid checks (4, 8, 16, 32 and 64 KiB).
 */
import { type Magic, type Prober, magic } from './types.js';
import type { AreaView } from './view.js';

const PAGE_SIZES = [0x1000, 0x2000, 0x4000, 0x8000, 0x10000];
const TUXONICE_MAGIC = [0xed, 0xc3, 0x02, 0xe9, 0x98, 0x56, 0xe5, 0x0c];
/** swap_header_v1_2 after the 1 KiB of boot bits: version, last page (both native-endian). */
const HEADER_OFFSET = 1024;
const MIN_BYTES = 10 * 4096;

const atPageEnds = (names: string[]): Magic[] => PAGE_SIZES.flatMap((page) => names.map((name) => magic(name, page - 10)));

/** libblkid's swap_set_info test: a v1 header needs version 1 (either byte order) and a last page. */
function validV1Header(view: AreaView): boolean {
  const h = view.read(HEADER_OFFSET, 12);
  if (!h) return false;
  const version = h.readUInt32LE(0);
  if (version !== 1 && h.readUInt32BE(0) !== 1) return false;
  return h.readUInt32LE(4) !== 0;
}

const swap: Prober = {
  type: 'swap',
  usage: 'other',
  minBytes: MIN_BYTES,
  magics: atPageEnds(['SWAP-SPACE', 'SWAPSPACE2']),
  check(view, matched) {
    const head = view.read(0, TUXONICE_MAGIC.length);
    if (!head || head.equals(Buffer.from(TUXONICE_MAGIC))) return false;
    return matched!.magic.bytes.toString('latin1') === 'SWAP-SPACE' || validV1Header(view);
  },
};

const swsuspend: Prober = {
  type: 'swsuspend',
  usage: 'other',
  minBytes: MIN_BYTES,
  magics: [magic(TUXONICE_MAGIC, 0), ...atPageEnds(['S1SUSPEND', 'S2SUSPEND', 'ULSUSPEND', 'LINHIB0001'])],
  check: (view) => view.read(HEADER_OFFSET, 12) !== null,
};

/** In libblkid's order (swsuspend before swap). */
export const SWAP_PROBERS: readonly Prober[] = [swsuspend, swap];
