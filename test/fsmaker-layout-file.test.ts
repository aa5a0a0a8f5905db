/**
 * --layout files (in process): a complete layout read as the model, printed and read back equal;
 * every problem of a bad file reported at once, each on its FILE:LINE; the layout rules
 * (checkLayout) on their own; the swap signature.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ToolError } from '../src/errors.js';
import { parseLayout, readLayoutFile } from '../src/fsmaker/layout-file.js';
import { type LayoutSpec, checkLayout } from '../src/fsmaker/layout-model.js';
import { layoutYaml } from '../src/fsmaker/layout-print.js';
import { swapHeader } from '../src/fsmaker/layout-swap.js';
import { COMPLETE } from './fsmaker-layout-fixtures.js';
import { ROOT, makeTempDir } from './helpers.js';

let dir: string;
beforeAll(() => {
  dir = makeTempDir('fsm-layout-file-');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));


const parse = (text: string): LayoutSpec => parseLayout(text, 'lab.yaml', '/base');
const problemsOf = (text: string): string[] => {
  try {
    parse(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ToolError);
    expect((err as ToolError).exitCode).toBe(33);
    return (err as ToolError).message.split('\n');
  }
  throw new Error('the layout was accepted');
};

describe('layout files', () => {
  it('reads a complete layout: sizes, types, roles, contents, paths relative to the file', () => {
    const spec = parse(COMPLETE);
    expect(spec.label).toBe('gpt');
    expect(spec.size).toBe(2 * 1024 ** 3);
    expect(spec.kernel).toBe('/base/boot/vmlinuz');
    expect(spec.output).toEqual({ path: '/base/out/disk.qcow2', format: 'qcow2', pad: 1024 * 1024 });
    expect(spec.cmdline).toEqual({ append: 'quiet', serial: true });
    expect(spec.partitions.map((p) => p.contents.kind)).toEqual(['fat', 'empty', 'ext4', 'swap', 'image']);
    expect(spec.partitions[0]).toMatchObject({ size: 256 * 1024 * 1024, mount: '/boot', contents: { from: '/base/bootfiles', label: 'BOOT' } });
    expect(spec.partitions[2]).toMatchObject({ legacyBiosBootable: true, mount: '/', contents: { kind: 'ext4', from: '/base/rootfs' } });
    expect(spec.partitions[4]).toMatchObject({ number: 9, size: 'rest', type: 'home', contents: { kind: 'image', path: '/srv/home.ext4' } });
  });

  it("reads the README's complete example, and prints it back equal", () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const example = /### Layout files[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(example).toBeDefined();
    const spec = parse(example!);
    expect(spec.partitions.map((p) => p.contents.kind)).toEqual(['fat', 'empty', 'ext4', 'swap', 'image', 'mkfs']);
    expect(parseLayout(layoutYaml(spec), 'p.yaml', '/x')).toEqual(spec);
  });

  it('prints a layout that reads back equal (YAML round trip), also from another directory', () => {
    const spec = parse(COMPLETE);
    const text = layoutYaml(spec);
    expect(parseLayout(text, 'printed.yaml', '/elsewhere')).toEqual(spec);
    expect(layoutYaml(parseLayout(text, 'printed.yaml', '/elsewhere'))).toBe(text);
    const mbr = parse(`label: mbr\nbootloader: bios\npartitions:\n  - { size: 64M, type: "0c", bootable: true, mount: /boot, contents: fat }\n  - { type: 83, mount: /, contents: { kind: image, path: r.img } }\n`);
    expect(mbr.partitions.map((p) => p.type)).toEqual(['0c', '83']);
    expect(parseLayout(layoutYaml(mbr), 'p.yaml', '/x')).toEqual(mbr);
  });

  it('reports every problem at once, each on its line, unknown keys included', () => {
    const bad = [
      'label: gpt', // 1
      'bootloader: both', // 2
      'sise: 1G', // 3: a typo
      'cmdline:', // 4
      '  serial: yes please', // 5
      'partitions:', // 6
      '  - size: 64M', // 7
      '    mount: /boot', // 8
      '    contents: { kind: ext4, from: x }', // 9: /boot on ext4
      '    typ: esp', // 10: a typo
      '  - type: bios-boot', // 11
      '    contents: { kind: fat, from: y }', // 12: a BIOS boot partition with a filesystem
      '  - size: rest', // 13
      '    type: lunix', // 14: unknown type
      '    uuid: not-a-guid', // 15
      '    mount: /', // 16
      '    contents: { kind: image, path: r.img }', // 17
      '  - size: rest', // 18: a second rest
      '    mount: /', // 19: a second root
      '    contents: { kind: image, path: s.img }', // 20
      '  - size: 4K', // 21: swap under 10 pages
      '    bootable: true', // 22: the MBR flag on a GPT
      '    contents: { kind: swap, uuid: 123 }', // 23
    ].join('\n');
    // Field errors first (the rules between fields wait for them): the typos, the wrong values.
    const first = problemsOf(bad);
    expect(first).toEqual([
      expect.stringMatching(/^lab\.yaml:3: unknown key 'sise' in the layout/),
      expect.stringMatching(/^lab\.yaml:5: serial must be true or false/),
      expect.stringMatching(/^lab\.yaml:10: unknown key 'typ' in partition 1/),
      expect.stringMatching(/^lab\.yaml:23: uuid must be a non-empty string/),
    ]);
    const fixed = bad.replace('sise: 1G', 'size: 1G').replace('serial: yes please', 'serial: true').replace('typ: esp', 'type: esp').replace('uuid: 123', 'uuid: x');
    const rules = problemsOf(fixed);
    const at = (line: number, pattern: RegExp) => expect.stringMatching(new RegExp(`^lab\\.yaml:${line}: ${pattern.source}`));
    expect(rules).toEqual([
      at(8, /\/boot must be a fat partition .*ext4 \/boot is not written yet/),
      at(12, /a BIOS boot partition holds GRUB's core\.img: its contents must be empty/),
      at(14, /unknown partition type 'lunix'/),
      at(15, /bad partition GUID 'not-a-guid'/),
      at(18, /only one partition can take the rest of the disk/),
      at(19, /two roots: partitions 3 and 4/),
      at(21, /a swap partition needs at least 40960 bytes/),
      at(22, /bootable is the MBR active flag: on a GPT, use legacy-bios-bootable/),
      at(23, /bad swap UUID 'x'/),
    ]);
  });

  it('refuses YAML it cannot parse, duplicate keys, and contents without what they need, on their lines', () => {
    expect(problemsOf('label: gpt\npartitions: [\n')).toEqual([expect.stringMatching(/^lab\.yaml:\d: /)]);
    expect(problemsOf('label: gpt\nlabel: mbr\npartitions: []\n')).toEqual([expect.stringMatching(/^lab\.yaml:2: .*[Uu]nique/)]);
    expect(problemsOf('label: gpt\nbootloader: none\ncmdline: { root: /dev/nfs }\npartitions:\n  - size: 1M\n    contents: { kind: image }\n  - contents: ext4\n')).toEqual([
      expect.stringMatching(/^lab\.yaml:6: image contents need path/),
      expect.stringMatching(/^lab\.yaml:7: contents ext4 needs its from/),
    ]);
    expect(problemsOf('- just\n- a list\n')).toEqual([expect.stringMatching(/^lab\.yaml:1: the layout must be a mapping/), expect.stringMatching(/^lab\.yaml:1: a layout is a mapping/)]);
  });

  it('the layout rules: MBR limits, GPT+BIOS without a BIOS boot partition, no root, UEFI without an ESP', () => {
    const part = (extra: object) => ({ size: 1024 * 1024, contents: { kind: 'empty' as const }, ...extra });
    const messages = (spec: LayoutSpec) => checkLayout(spec).map((p) => `${p.path.join('.')}: ${p.message}`);
    const root = { mount: '/' as const, contents: { kind: 'image' as const, path: 'r' } };
    const boot = { mount: '/boot' as const, esp: true, contents: { kind: 'fat' as const } };
    expect(messages({ label: 'mbr', bootloader: 'bios', cmdline: {}, partitions: [part(boot), part(root), part({}), part({}), part({})] })).toEqual([
      expect.stringMatching(/^partitions: an MBR holds 4 primary partitions, this layout has 5 \(fsmaker writes no logical partitions/),
      expect.stringMatching(/^partitions\.4\.number: partition number 5: an MBR numbers its partitions 1 to 4/),
    ]);
    expect(messages({ label: 'mbr', bootloader: 'bios', cmdline: {}, partitions: [part({ ...boot, type: 'bios-boot', uuid: 'x', name: 'n' }), part(root)] })).toEqual([
      'partitions.0.type: type bios-boot has no MBR equivalent',
      'partitions.0.uuid: an MBR partition has no UUID (its PARTUUID is the disk signature and the number)',
      'partitions.0.name: an MBR partition has no name',
    ]);
    expect(messages({ label: 'gpt', bootloader: 'both', cmdline: {}, partitions: [part({ ...boot, esp: false })] })).toEqual([
      'partitions: no partition says mount: / and the command line has no root: replacement (root: /dev/nfs...)',
      'partitions: bootloader both needs an EFI system partition (type: esp, or esp: true on a fat partition)',
      "partitions: bootloader both on a GPT needs a BIOS boot partition for GRUB's core.img (type: bios-boot, 1 MiB, contents: empty)",
    ]);
    expect(messages({ label: 'gpt', bootloader: 'uefi', cmdline: { root: '/dev/nfs' }, partitions: [part(boot)] })).toEqual([]);
  });

  it('reads a layout file from disk and refuses one that is not a file (33)', () => {
    const file = path.join(dir, 'l.yaml');
    fs.writeFileSync(file, COMPLETE);
    expect(readLayoutFile(file).output?.path).toBe(path.join(dir, 'out/disk.qcow2'));
    expect(() => readLayoutFile(dir)).toThrow(/is not a regular file/);
    expect(() => readLayoutFile(path.join(dir, 'none.yaml'))).toThrow(/cannot read the layout/);
  });

  it("writes mkswap's signature: blkid and file see a swap partition with its UUID and label", () => {
    const file = path.join(dir, 'swap.img');
    const uuid = '1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0';
    fs.writeFileSync(file, swapHeader({ sizeBytes: 8 * 1024 * 1024, uuid, label: 'swap0' }));
    fs.truncateSync(file, 8 * 1024 * 1024);
    const blkid = spawnSync('blkid', ['-p', '-o', 'export', file], { encoding: 'utf8' }).stdout;
    expect(blkid).toMatch(/^TYPE=swap$/m);
    expect(blkid).toMatch(new RegExp(`^UUID=${uuid}$`, 'm'));
    expect(blkid).toMatch(/^LABEL=swap0$/m);
    expect(blkid).toMatch(/^VERSION=1$/m);
    const described = spawnSync('file', ['-b', file], { encoding: 'utf8' }).stdout;
    expect(described).toMatch(/^Linux swap file, 4k page size, little endian, version 1, size 2047 pages, 0 bad pages, LABEL=swap0, /);
    expect(described).toContain(uuid);
    // And byte for byte what mkswap writes on the same file.
    const theirs = path.join(dir, 'mkswap.img');
    fs.writeFileSync(theirs, '');
    fs.truncateSync(theirs, 8 * 1024 * 1024);
    expect(spawnSync('mkswap', ['-q', '-U', uuid, '-L', 'swap0', theirs]).status).toBe(0);
    expect(fs.readFileSync(file).subarray(0, 4096).equals(fs.readFileSync(theirs).subarray(0, 4096))).toBe(true);
  });
});
