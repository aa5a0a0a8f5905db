/**
 * The VMDK descriptor parser (pure): what qemu-img and the technote write, case and quoting, every
 * extent type and access, one error per problem naming its line; the extent-line formatter the
 * writers use; and the identification of which VMDK a pipe can carry (markers) and which it cannot.
 */
import { describe, expect, it } from 'vitest';
import { DescriptorError, MAX_EXTENTS, embeddedDescriptorText, formatExtentLine, hasParent, parseDescriptor } from '../src/format/vmdk-descriptor.js';
import { sparseStreamRefusal } from '../src/format/vmdk-layer.js';
import { FLAG_COMPRESSED, FLAG_MARKERS, encodeSparseHeader } from '../src/format/vmdk-header.js';

const QEMU_SPLIT = `# Disk DescriptorFile
version=1
CID=ea3d96f
parentCID=ffffffff
createType="twoGbMaxExtentSparse"

# Extent description
RW 4194304 SPARSE "disk-s001.vmdk"
RW 204800 SPARSE "disk-s002.vmdk"

# The Disk Data Base
#DDB

ddb.virtualHWVersion = "4"
ddb.geometry.cylinders = "4364"
ddb.adapterType = "ide"
ddb.toolsVersion = "2147483647"
`;

const errorOf = (text: string): DescriptorError => {
  try {
    parseDescriptor(text);
  } catch (err) {
    if (err instanceof DescriptorError) return err;
    throw err;
  }
  throw new Error('parsed without an error');
};

describe('parseDescriptor', () => {
  it("qemu-img's split descriptor: header keys, extents in order, the disk database", () => {
    const d = parseDescriptor(QEMU_SPLIT);
    expect(d.version).toBe(1);
    expect(d.cid).toBe('ea3d96f');
    expect(d.parentCid).toBe('ffffffff');
    expect(d.createType).toBe('twoGbMaxExtentSparse');
    expect(hasParent(d)).toBe(false);
    expect(d.extents).toEqual([
      { access: 'RW', sectors: 4194304, type: 'SPARSE', file: 'disk-s001.vmdk', offsetSectors: 0, line: 8 },
      { access: 'RW', sectors: 204800, type: 'SPARSE', file: 'disk-s002.vmdk', offsetSectors: 0, line: 9 },
    ]);
    expect(d.ddb.get('ddb.adaptertype')).toBe('ide');
    expect(d.ddb.get('ddb.toolsversion')).toBe('2147483647');
  });

  it('FLAT with an offset, ZERO without a file, RDONLY and NOACCESS, lower case, CRLF lines, names with spaces', () => {
    const d = parseDescriptor('createType="custom"\r\nrw 100 flat "a b.bin" 63\r\nRDONLY 5 ZERO\r\nNOACCESS 7 VMFS "c.bin"\r\n');
    expect(d.extents.map((e) => [e.access, e.sectors, e.type, e.file, e.offsetSectors, e.line])).toEqual([
      ['RW', 100, 'FLAT', 'a b.bin', 63, 2],
      ['RDONLY', 5, 'ZERO', null, 0, 3],
      ['NOACCESS', 7, 'VMFS', 'c.bin', 0, 4],
    ]);
  });

  it('a parent disk is one: parentCID other than ffffffff, or a parentFileNameHint', () => {
    expect(hasParent(parseDescriptor('parentCID=12345678\n'))).toBe(true);
    expect(hasParent(parseDescriptor('parentCID=ffffffff\nparentFileNameHint="base.vmdk"\n'))).toBe(true);
    expect(hasParent(parseDescriptor('parentCID=FFFFFFFF\n'))).toBe(false);
  });

  it.each([
    ['RW 10 FLAT\n', 1, /FLAT extent without a file name/],
    ['# c\nRW 0 FLAT "x" 0\n', 2, /extent of 0 sectors/],
    ['RW 10 SPARSE "x" 5\n', 1, /an offset is given to a SPARSE extent/],
    ['RW 10 CDROM "x"\n', 1, /extent type CDROM is not one of/],
    ['RW -5 FLAT "x" 0\n', 1, /extent size "-5" is not a sector count/],
    ['RW 10 FLAT "x" 18014398509481984\n', 1, /extent offset 18014398509481984 sectors is beyond any disk/],
    ['version=1\nthis is not a descriptor\n', 2, /neither a key = value line nor an extent line/],
    ['version=one\n', 1, /version "one" is not a number/],
    [`RW 10 FLAT "${'n'.repeat(600)}" 0\n`, 1, /file name of 600 characters/],
  ])('%j: an error naming line %i', (text, line, message) => {
    const err = errorOf(text);
    expect(err.line).toBe(line);
    expect(err.message).toMatch(message);
  });

  it(`at most ${MAX_EXTENTS} extents, and a descriptor of at most 10 MiB`, () => {
    expect(parseDescriptor('RW 1 ZERO\n'.repeat(MAX_EXTENTS)).extents.length).toBe(MAX_EXTENTS);
    expect(errorOf('RW 1 ZERO\n'.repeat(MAX_EXTENTS + 1)).line).toBe(MAX_EXTENTS + 1);
    expect(errorOf(`#${' '.repeat(10 << 20)}\n`).message).toMatch(/descriptor of 10485762 bytes \(at most 10485760\)/);
  });

  it('an embedded descriptor ends at its first NUL; extent lines format back to what parses the same', () => {
    const area = Buffer.alloc(1024);
    area.write('createType="monolithicSparse"\nRW 2048 SPARSE "x.vmdk"\n');
    const d = parseDescriptor(embeddedDescriptorText(area));
    expect(d.extents.length).toBe(1);
    for (const e of [...d.extents, ...parseDescriptor('RW 100 FLAT "a.bin" 63\nRW 5 ZERO\n').extents]) {
      const again = parseDescriptor(formatExtentLine(e)).extents[0]!;
      expect({ ...again, line: e.line }).toEqual(e);
    }
    expect(formatExtentLine({ access: 'RW', sectors: 100, type: 'FLAT', file: 'a.bin', offsetSectors: 63 })).toBe('RW 100 FLAT "a.bin" 63');
  });
});

describe('which KDMV file a stream can carry', () => {
  const header = (flags: number) =>
    encodeSparseHeader({ version: 3, flags, capacity: 128, grainSize: 128, descriptorOffset: 0, descriptorSize: 0, numGTEsPerGT: 512, rgdOffset: 0, gdOffset: null, overHead: 1, uncleanShutdown: false, compressAlgorithm: 1 });
  it('compressed grains with markers: streamable; anything else needs random access, named', () => {
    expect(sparseStreamRefusal(header(FLAG_COMPRESSED | FLAG_MARKERS))).toBeNull();
    expect(sparseStreamRefusal(header(FLAG_COMPRESSED))).toMatch(/monolithicSparse/);
    expect(sparseStreamRefusal(header(0))).toMatch(/monolithicSparse/);
    expect(sparseStreamRefusal(Buffer.from('KDMV'))).toBe('a VMDK sparse extent');
  });
});
