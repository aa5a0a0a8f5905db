/**
 * wipefs's probing loop over libblkid's two chains, in order: each prober is asked again after
 * each hit with that hit's magic hidden (so GPT's backup header follows its primary, and a second
 * magic of one prober is found), then the next prober; superblocks first, partition tables last.
 */
import type { MagicPlace, Prober, Signature } from './types.js';
import type { AreaView } from './view.js';

/** One prober cannot hit more often than this: each hit hides its magic, so real areas need 2 or 3. */
const MAX_HITS_PER_PROBER = 8;

export type Chain = 'superblocks' | 'partitions';

function probeOnce(view: AreaView, prober: Prober, chain: Chain): MagicPlace | null {
  if (prober.minBytes !== undefined && view.areaBytes < prober.minBytes) return null;
  if (chain === 'superblocks' && prober.usage === 'raid' && view.tiny) return null;
  const matched = prober.magics?.length ? view.matchMagic(prober.magics) : undefined;
  if (matched === null) return null;
  const verdict = prober.check ? prober.check(view, matched) : true;
  if (verdict === false) return null;
  if (verdict === true) return matched ? { offset: matched.offset, length: matched.magic.bytes.length } : null;
  return verdict;
}

export function runChain(view: AreaView, chain: Chain, probers: readonly Prober[], found: Signature[]): void {
  // libblkid ignores superblocks on areas of 1 KiB or less (extended partitions' 1-sector nodes).
  if (chain === 'superblocks' && view.areaBytes <= 1024) return;
  if (view.areaBytes <= 0) return;
  for (const prober of probers) {
    for (let hits = 0; hits < MAX_HITS_PER_PROBER; hits++) {
      const place = probeOnce(view, prober, chain);
      if (!place || place.length <= 0) break;
      // wipefs lists an offset once, where it was first found, under the last type found there.
      const earlier = found.find((s) => s.offset === place.offset);
      if (earlier) Object.assign(earlier, { type: prober.type, usage: prober.usage, length: Math.max(earlier.length, place.length) });
      else found.push({ type: prober.type, usage: prober.usage, offset: place.offset, length: place.length });
      view.hide(place.offset, place.length);
    }
  }
}
