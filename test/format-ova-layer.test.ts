/**
 * ova-layer.ts (issue 12, OVA input): the disk member found from the OVF (files and a stream's
 * head), the member as a layer (reads clipped to it, zeros past its end, its data map), and
 * seeded corruptions that end as one CORRUPT_INPUT error naming the source, never anything else.
 */
import { describe, expect, it } from 'vitest';
import { ToolError } from '../src/errors.js';
import type { Extent } from '../src/extent/extent.js';
import type { SourceLayer } from '../src/format/chain.js';
import { findOvaDisk, openOva } from '../src/format/ova-layer.js';
import { ovfEnvelope, ovfManifest } from '../src/format/ovf.js';
import { TAR_END_BYTES, tarFileHeader, tarPadding } from '../src/format/tar.js';
import { patternBytes } from './helpers.js';
import { measured, mutants } from './hostile.js';

function ova(disk: Buffer, options: { first?: string; href?: string; ovfComment?: string } = {}): Buffer {
  const ovf = Buffer.from((options.ovfComment ? `<!-- ${options.ovfComment} -->\n` : '') + ovfEnvelope({ name: 'a', diskFile: options.href ?? 'a-disk1.vmdk', diskFileBytes: disk.length, capacityBytes: disk.length, populatedBytes: 0, cpus: 1, memoryMiB: 64, hardwareVersion: 11, adapterType: 'lsilogic' }));
  const mf = Buffer.from(ovfManifest([{ name: 'a.ovf', sha256: '00' }]));
  const parts: Buffer[] = [];
  for (const [name, data] of [[options.first ?? 'a.ovf', ovf], ['a.mf', mf], ['a-disk1.vmdk', disk]] as const) parts.push(tarFileHeader({ name, size: data.length, mtime: 0 }), data, Buffer.alloc(tarPadding(data.length)));
  return Buffer.concat([...parts, Buffer.alloc(TAR_END_BYTES)]);
}

const read = (buf: Buffer) => (o: number, l: number) => buf.subarray(o, o + l);

function fileLayer(buf: Buffer): SourceLayer {
  return {
    name: 'x.ova',
    formats: [],
    length: { exact: buf.length },
    readAt: (o, l, into) => {
      const out = into ?? Buffer.alloc(l);
      out.fill(0, 0, l);
      buf.copy(out, 0, o, Math.min(buf.length, o + l));
      return out.subarray(0, l);
    },
    mayHoldData: function* () {
      yield { offset: 0, length: buf.length };
    },
    extents: async function* (range) {
      yield { offset: 0, length: buf.length, data: buf } as Extent;
      void range;
    },
    progressDone: null,
    progressTotal: buf.length,
  };
}

describe('the disk member of an OVA', () => {
  const disk = patternBytes(5000, 4);
  const archive = ova(disk);

  it("is the member the OVF's first disk names, found from a file or from a stream's head", () => {
    const found = findOvaDisk('x.ova', read(archive), archive.length);
    expect(found.member.name).toBe('a-disk1.vmdk');
    expect(archive.subarray(found.member.dataOffset, found.member.dataOffset + found.member.size).equals(disk)).toBe(true);
    expect(findOvaDisk('x.ova', read(archive.subarray(0, 8192)), null).member.dataOffset).toBe(found.member.dataOffset);
  });

  it('as a layer: reads clipped to the member, zeros past its end, its data map and extents rebased', async () => {
    const layer = openOva(fileLayer(archive), archive.subarray(0, 65536), 'x.ova', (member) => member);
    expect(layer.length).toEqual({ exact: disk.length });
    expect(layer.formats).toEqual(['ova']);
    expect(layer.readAt!(4990, 20).equals(Buffer.concat([disk.subarray(4990), Buffer.alloc(10)]))).toBe(true);
    expect([...layer.mayHoldData!(100)]).toEqual([{ offset: 100, length: disk.length - 100 }]);
    const got: Buffer[] = [];
    for await (const e of layer.extents({ start: 0, end: null })) got.push(e.data!.subarray(0, e.length));
    expect(Buffer.concat(got).equals(disk)).toBe(true);
  });

  it('refusals name the source and the byte: a first member that is not the .ovf, a disk the archive lacks, a stream whose head is too short', () => {
    const message = (f: () => unknown): string => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(ToolError);
        return (err as ToolError).message;
      }
      return 'no error';
    };
    const other = ova(disk, { first: 'readme.txt' });
    expect(message(() => findOvaDisk('x.ova', read(other), other.length))).toBe("x.ova: an OVA's first member is its .ovf; found 'readme.txt' at byte 0");
    const lacking = ova(disk, { href: 'b.vmdk' });
    expect(message(() => findOvaDisk('x.ova', read(lacking), lacking.length))).toBe("x.ova: the OVF's first disk is 'b.vmdk', which the archive does not hold");
    // A stream that ended inside the .ovf is a cut archive; one whose .ovf runs past the head the chain sniffed needs a file.
    expect(message(() => openOva({ ...fileLayer(archive), readAt: null }, archive.subarray(0, 3000), 'stdin', (m) => m))).toMatch(/^stdin: OVF descriptor 'a\.ovf' at byte 512 is cut short \(2488 of \d+ bytes\)$/);
    const long = ova(disk, { ovfComment: 'x'.repeat(80_000) });
    expect(message(() => openOva({ ...fileLayer(long), readAt: null }, long.subarray(0, 65536), 'stdin', (m) => m))).toMatch(/^stdin: an OVA from a stream must have its \.ovf, manifest and disk header in its first 65536 bytes/);
    expect(openOva(fileLayer(long), long.subarray(0, 65536), 'x.ova', (m) => m).length).toEqual({ exact: disk.length });
  });

  it('seeded corruptions of the first 8 KiB: a member inside the archive or one CORRUPT_INPUT error, quickly', () => {
    let errors = 0;
    for (const m of mutants(archive, 31, 4000, { from: 0, to: 8192 })) {
      const run = measured(() => findOvaDisk('x.ova', read(m.bytes), m.bytes.length));
      if (run.error === undefined) {
        const { member } = run.value!;
        expect(member.dataOffset + member.size, m.description).toBeLessThanOrEqual(m.bytes.length);
      } else {
        expect(run.error, `${m.description}: ${String(run.error)}`).toBeInstanceOf(ToolError);
        expect((run.error as ToolError).code).toBe('CORRUPT_INPUT');
        expect((run.error as ToolError).message.startsWith('x.ova: ')).toBe(true);
        errors++;
      }
      expect(run.ms).toBeLessThan(200);
    }
    expect(errors).toBeGreaterThan(500);
  });
});
