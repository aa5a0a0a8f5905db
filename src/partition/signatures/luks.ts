/** LUKS1 and LUKS2 headers; for LUKS2 also its second header, at the offsets cryptsetup may use. */
import type { Prober } from './types.js';

const LUKS_MAGIC = Buffer.from('LUKS\xba\xbe', 'latin1');
const LUKS2_SECONDARY_MAGIC = Buffer.from('SKUL\xba\xbe', 'latin1');
const LUKS2_SECONDARY_OFFSETS = [0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000, 0x400000];
/** struct luks2_phdr: libblkid reads it whole wherever it looks. */
const LUKS2_HEADER_BYTES = 512;

const luks: Prober = {
  type: 'crypto_LUKS',
  usage: 'crypto',
  check(view) {
    const primary = view.read(0, LUKS2_HEADER_BYTES);
    if (!primary) return false;
    if (primary.subarray(0, LUKS_MAGIC.length).equals(LUKS_MAGIC)) return { offset: 0, length: LUKS_MAGIC.length };
    // Without a primary header, the first secondary one; an offset past the end ends the search.
    for (const offset of LUKS2_SECONDARY_OFFSETS) {
      const header = view.read(offset, LUKS2_HEADER_BYTES);
      if (!header) return false;
      if (header.subarray(0, LUKS2_SECONDARY_MAGIC.length).equals(LUKS2_SECONDARY_MAGIC)) return { offset, length: LUKS2_SECONDARY_MAGIC.length };
    }
    return false;
  },
};

export const LUKS_PROBERS: readonly Prober[] = [luks];
