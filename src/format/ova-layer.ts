/**
 * An OVA as a layer of a source chain: the tar is walked to its .ovf (the first member, as
 * DSP0243 and every writer put it), the OVF's first disk names its member, and that member's
 * bytes become the layer below the disk's own format (a streamOptimized VMDK, read by the VMDK
 * reader at the member's offset), opened by `openInner`.
 *
 * From a file the walk reads headers at any offset. From a stream (a pipe, stdin) it has the
 * first IDENTIFY_HEAD_BYTES the chain sniffed: the .ovf, the manifest and the disk's header must
 * lie in them (they do in every OVA: the two text members are a few KiB), and the member's bytes
 * are then taken forward, checked to be all there.
 */
import { ToolError } from '../errors.js';
import type { Extent } from '../extent/extent.js';
import { windowExtents } from '../extent/window.js';
import { type SourceLayer, exactLength } from './chain.js';
import { IDENTIFY_HEAD_BYTES } from './identify.js';
import { MAX_OVF_BYTES, OvfError, firstOvfDisk } from './ovf.js';
import { TAR_BLOCK, TarError, type TarMember, TarWalker } from './tar.js';

/** The disk member found, and the OVF disk that names it. */
export interface OvaDiskMember {
  member: TarMember;
  /** The OVF's ovf:format of the disk, when given. */
  format: string | null;
}

const corrupt = (name: string, message: string): ToolError => new ToolError('CORRUPT_INPUT', `${name}: ${message}`);

/**
 * The disk member of the OVA that `read(offset, length)` reads (sync: a file's bytes, or the
 * head of a stream, which gives fewer bytes past what it holds). `length` is the archive's, or
 * null (a stream). Errors are one line naming the source, the member and the byte.
 */
export function findOvaDisk(name: string, read: (offset: number, length: number) => Buffer, length: number | null): OvaDiskMember {
  const walker = new TarWalker(length);
  let ovf: TarMember | null = null;
  let href: string | null = null;
  let format: string | null = null;
  try {
    for (;;) {
      const step = walker.header(read(walker.offset, TAR_BLOCK));
      if (step.kind === 'end') break;
      if (step.kind === 'extended') {
        walker.extendedBody(step, read(step.bodyOffset, step.size));
        continue;
      }
      const { member } = step;
      if (ovf === null) {
        if (!/\.ovf$/i.test(member.name)) throw corrupt(name, `an OVA's first member is its .ovf; found '${member.name}' at byte ${member.headerOffset}`);
        if (member.size > MAX_OVF_BYTES) throw corrupt(name, `OVF descriptor '${member.name}' at byte ${member.dataOffset} is ${member.size} bytes, more than the ${MAX_OVF_BYTES} read`);
        const text = read(member.dataOffset, member.size);
        if (text.length < member.size) throw corrupt(name, `OVF descriptor '${member.name}' at byte ${member.dataOffset} is cut short (${text.length} of ${member.size} bytes)`);
        ovf = member;
        const disk = firstOvfDisk(text.toString('utf8'));
        href = disk.href;
        format = disk.format;
        continue;
      }
      if (member.name === href || member.name === `./${href}`) return { member, format };
    }
  } catch (err) {
    if (err instanceof TarError) throw corrupt(name, `${err.message} (an OVA is a tar archive)`);
    if (err instanceof OvfError) throw corrupt(name, `OVF descriptor '${ovf?.name}' at byte ${ovf?.dataOffset}: ${err.message}`);
    throw err;
  }
  if (ovf === null) throw corrupt(name, 'an OVA with no member at all');
  throw corrupt(name, `the OVF's first disk is '${href}', which the archive does not hold`);
}

/** The member's bytes as a layer: offsets from the member's first byte, the OVA's below them. */
export function memberLayer(below: SourceLayer, member: TarMember): SourceLayer {
  const { dataOffset: base, size } = member;
  const readAt = below.readAt;
  return {
    name: below.name,
    formats: [...below.formats, 'ova'],
    length: { exact: size },
    readAt: readAt
      ? (offset, length, into) => {
          const out = into ?? Buffer.alloc(length);
          const inside = Math.max(0, Math.min(length, size - offset));
          if (inside > 0) readAt(base + offset, inside, out.subarray(0, inside));
          out.fill(0, inside, length); // zeros past the member's end, as past a file's
          return out.subarray(0, length);
        }
      : null,
    ...(below.mayHoldData
      ? {
          mayHoldData: function* (start: number) {
            for (const r of below.mayHoldData!(base + start)) {
              const from = Math.max(r.offset, base + start);
              const to = Math.min(r.offset + r.length, base + size);
              if (from >= base + size) return;
              if (to > from) yield { offset: from - base, length: to - from };
            }
          },
        }
      : {}),
    extents: (range) => {
      const end = Math.min(range.end ?? size, size);
      return checkedWhole(below.name, member, end, windowExtents(below.extents({ start: base + range.start, end: base + end }), { start: base, end: base + size }));
    },
    progressDone: below.progressDone,
    progressTotal: below.progressTotal,
  };
}

/** A stream's member must be all there: an archive cut inside it is an error, not a shorter disk. */
async function* checkedWhole(name: string, member: TarMember, wanted: number, extents: AsyncGenerator<Extent>): AsyncGenerator<Extent> {
  let end = 0;
  for await (const e of extents) {
    end = Math.max(end, e.offset + e.length);
    yield e;
  }
  if (end < wanted) throw corrupt(name, `the OVA ends at byte ${member.dataOffset + end}, inside its disk member '${member.name}' (${member.size} bytes from byte ${member.dataOffset})`);
}

/**
 * The OVA's disk as a layer: the member found (from a file at any offset, from a stream in the
 * head the chain sniffed), and inside it what its own first bytes say, opened by `openInner`
 * (the VMDK reader; a raw member is the disk as it is).
 */
export function openOva(below: SourceLayer, head: Buffer, name: string, openInner: (member: SourceLayer, memberHead: Buffer) => SourceLayer): SourceLayer {
  const length = exactLength(below.length);
  const readAt = below.readAt;
  const read = readAt && length !== null ? (o: number, l: number) => readAt(o, Math.max(0, Math.min(l, length - o))) : (o: number, l: number) => head.subarray(o, o + l);
  let found: OvaDiskMember;
  try {
    found = findOvaDisk(name, read, readAt ? length : null);
  } catch (err) {
    // From a stream only the head is there: a walk that ran out of it needs more than it holds
    // (a head shorter than asked for is the whole stream: that is a cut archive, the error as it is).
    if (!readAt && head.length >= IDENTIFY_HEAD_BYTES && err instanceof ToolError && /cut short|without its end blocks/.test(err.message)) {
      throw new ToolError('UNSUPPORTED_FORMAT', `${name}: an OVA from a stream must have its .ovf, manifest and disk header in its first ${head.length} bytes, and this one has not (${err.message.slice(name.length + 2)}); read it from a file; nothing written`);
    }
    throw err;
  }
  const { member } = found;
  const layer = memberLayer(below, member);
  const headBytes = Math.min(member.size, IDENTIFY_HEAD_BYTES);
  const memberHead = readAt ? layer.readAt!(0, headBytes) : head.subarray(member.dataOffset, member.dataOffset + headBytes);
  if (!readAt && memberHead.length < Math.min(member.size, TAR_BLOCK)) {
    if (head.length < IDENTIFY_HEAD_BYTES) throw corrupt(name, `the OVA ends at byte ${head.length}, inside its disk member '${member.name}' (${member.size} bytes from byte ${member.dataOffset})`);
    throw new ToolError('UNSUPPORTED_FORMAT', `${name}: an OVA from a stream must have its disk member's first ${TAR_BLOCK} bytes in its first ${head.length} bytes; this one's begins at byte ${member.dataOffset}; read it from a file; nothing written`);
  }
  return openInner(layer, memberHead);
}
