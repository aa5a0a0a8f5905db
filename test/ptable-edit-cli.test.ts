/**
 * ptable's edit subcommands against the machine's sfdisk 2.38.1 through test/sfdisk-oracle.ts
 * (same image, same arguments, bytes compared; what each prints compared too): util-linux's
 * tests/ts/sfdisk/gpt (uuid, label, type, attrs*, resize, reorder) and dos (activate, the
 * deletes), and sfdisk's refusals (each fails, with one line, a documented exit code, and the
 * disk untouched).
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { PTABLE_EXIT_CODES } from '../src/errors.js';
import { sfdiskWrite, useTempDir } from './helpers.js';
import { imageDifference, replay } from './sfdisk-oracle.js';

let dir = '';
useTempDir('ptable-edit-cli-', (d) => {
  dir = d;
});

const MiB = 1024 * 1024;
const GPT5 = 'label: gpt\n,1M\n,1M\n,1M\n,1M\n,1M\n';
const DOS_LOGICALS = 'label: dos\n,1M\n,1M,,*\n,1M\n,10M,E\n,1M\n,1M\n,1M\n';
const GPT_UNSORTED = 'label: gpt\nlabel-id: 3b8559db-33af-43e9-befc-c331d829b539\nstart=8192, size=6144\nstart=2048, size=6144\nstart=20480, size=81887\nstart=14336, size=6144\n';
const DOS_UNSORTED = 'label: dos\nstart=8192, size=2048\nstart=2048, size=2048\nstart=20480, size=10240, type=5\nstart=14336, size=2048\nstart=22528, size=2048\n';
/** sfdisk writes `script` on a 4096-byte-sector loop device over `file`. */
function sfdiskOn4k(file: string, script: string): void {
  const device = execFileSync('losetup', ['-b', '4096', '-f', '--show', file]).toString().trim();
  try {
    sfdiskWrite(device, script);
  } finally {
    execFileSync('losetup', ['-d', device]);
  }
}

const DOCUMENTED = new Set<number>(Object.values(PTABLE_EXIT_CODES));

interface Case {
  setup: string;
  /** sfdisk's arguments; ptable's are the same with the option turned into the subcommand (sfdisk-argv.ts does that too). */
  sfdisk: string[];
  ptable: string[];
  /** Compare the unique GUIDs too (the case sets them). */
  exactIds?: boolean;
  sectorSize?: 512 | 4096;
  /** The LBA of an EBR whose link's CHS bytes sfdisk gets wrong (see expectSame). */
  chsDiffersAt?: number;
}

function expectSame(name: string, c: Case): void {
  const sectorSize = c.sectorSize ?? 512;
  const bytes = (sectorSize === 4096 ? 128 : 64) * MiB;
  const prepare = (f: string): void => (sectorSize === 512 ? sfdiskWrite(f, c.setup) : sfdiskOn4k(f, c.setup));
  const r = replay(dir, name, {
    bytes,
    sectorSize,
    setup: prepare,
    oracle: { command: 'sfdisk', args: ['--no-reread', '--no-tell-kernel', ...c.sfdisk] },
    ptable: c.ptable,
    device: sectorSize === 4096,
  });
  if (r.oracle.status !== 0) {
    expect(r.ptable.status, `${name}: sfdisk failed (${r.oracle.stderr.trim()}); ptable: ${r.ptable.stderr}`).not.toBe(0);
    expect(DOCUMENTED.has(r.ptable.status ?? -1), `${name}: exit ${r.ptable.status}`).toBe(true);
    expect(r.ptable.stderr).toMatch(/^ptable: [^\n]+\n$/);
    // sfdisk changed nothing either: both copies are still the prepared image, ids and all
    expect(imageDifference(r.oracle.image, r.ptable.image, sectorSize, false), `${name}: disk changed`).toBeNull();
    return;
  }
  expect(r.ptable.status, `${name}: ${r.ptable.stderr}`).toBe(0);
  if (c.chsDiffersAt !== undefined) {
    // sfdisk computes this link's CHS from the deleted EBR's LBA (libfdisk's delete_partition
    // syncs it with the wrong offset); ptable writes the CHS of the LBAs. Only those bytes differ.
    const at = c.chsDiffersAt * sectorSize + 0x1ce;
    expect(imageDifference(r.oracle.image, r.ptable.image, sectorSize, !c.exactIds)).toMatch(new RegExp(`^byte ${at + 1} `));
    for (const image of [r.oracle.image, r.ptable.image]) {
      image.fill(0, at + 1, at + 4);
      image.fill(0, at + 5, at + 8);
    }
  }
  expect(imageDifference(r.oracle.image, r.ptable.image, sectorSize, !c.exactIds), name).toBeNull();
  // sfdisk -q still prints the values it is asked for; ptable prints them the same way
  if (c.sfdisk.includes('-q')) expect(r.ptable.stdout.replaceAll('.ptable.img', '.oracle.img'), name).toBe(r.oracle.stdout);
}

const set = (option: string, setup: string, args: string[], exactIds = false): Case => ({
  setup,
  sfdisk: ['-q', option, 'DISK', ...args],
  ptable: [option.replace(/^--/, ''), 'DISK', ...args],
  exactIds,
});

describe('ptable part-uuid / part-label / part-type / part-attrs / disk-id: util-linux gpt subtests against sfdisk', () => {
  const cases: Record<string, Case> = {
    'uuid: set': set('--part-uuid', GPT5, ['1', '91dc657b-d7b4-4653-a367-663194ffd432'], true),
    'uuid: print': set('--part-uuid', GPT5, ['2']),
    'uuid: not a UUID': set('--part-uuid', GPT5, ['1', '1234']),
    'label: set': set('--part-label', GPT5, ['1', 'EFI system']),
    'label: print (empty)': set('--part-label', GPT5, ['1']),
    'type: set a GUID': set('--part-type', GPT5, ['1', 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B']),
    'type: set a shortcut': set('--part-type', GPT5, ['1', 'S']),
    'type: set a name': set('--part-type', GPT5, ['1', 'Linux home']),
    'type: print': set('--part-type', GPT5, ['3']),
    'type: not a type': set('--part-type', GPT5, ['1', 'zzz']),
    attrs: set('--part-attrs', GPT5, ['2', 'RequiredPartition,NoBlockIOProtocol,48,51']),
    'attrs-space': set('--part-attrs', GPT5, ['2', 'RequiredPartition NoBlockIOProtocol 48 51']),
    'attrs-guid': set('--part-attrs', GPT5, ['2', 'GUID:48 GUID:51,52,63']),
    'attrs-with-typo (2.38 takes RequiredPartiton)': set('--part-attrs', GPT5, ['2', 'RequiredPartiton,NoBlockIOProtocol,48,51']),
    'attrs-unsupported': set('--part-attrs', GPT5, ['2', 'NoBlockIOProtocol FooBar 48 51']),
    'attrs-broken-nosep': set('--part-attrs', GPT5, ['2', 'NoBlockIOProtocolRequiredPartiton']),
    'attrs-broken-guid': set('--part-attrs', GPT5, ['2', 'GUID:NoBlockIOProtocol GUID:GUID:63 RequiredPartiton']),
    'attrs-numeric-named (2.38: bits 0-2 only by name)': set('--part-attrs', GPT5, ['2', '0,1,2']),
    'attrs-numeric-mixed': set('--part-attrs', GPT5, ['2', '2,GUID:60']),
    'attrs-numeric-hex': set('--part-attrs', GPT5, ['2', '0x2']),
    'attrs-reserved': set('--part-attrs', GPT5, ['2', '5']),
    'attrs: print': set('--part-attrs', 'label: gpt\n,1M\nsize=1M, attrs="LegacyBIOSBootable GUID:50"\n', ['2']),
    'partition unused': set('--part-type', GPT5, ['7', 'L']),
    'partition past the table': set('--part-type', GPT5, ['200', 'L']),
    'disk-id: set (gpt)': set('--disk-id', GPT5, ['01234567-89ab-cdef-0123-456789abcdef'], true),
    'disk-id: print': set('--disk-id', 'label: gpt\nlabel-id: 3B8559DB-33AF-43E9-BEFC-C331D829B539\n,1M\n', []),
    'disk-id: not a GUID': set('--disk-id', GPT5, ['1234']),
    'dos disk-id: set': set('--disk-id', DOS_LOGICALS, ['0x12345678'], true),
    'dos disk-id: print': set('--disk-id', 'label: dos\nlabel-id: 0xdeadbeef\n,1M\n', []),
    'dos disk-id: not a number': set('--disk-id', DOS_LOGICALS, ['0x1234q']),
    'dos type: set': set('--part-type', DOS_LOGICALS, ['1', '82']),
    'dos type: a logical one': set('--part-type', DOS_LOGICALS, ['6', 'b']),
    'dos type: print': set('--part-type', DOS_LOGICALS, ['4']),
    'dos type: a second extended': set('--part-type', DOS_LOGICALS, ['1', '5']),
    'dos type: the extended one, holding logical ones': set('--part-type', DOS_LOGICALS, ['4', '83']),
    'dos label: sfdisk writes the table unchanged': set('--part-label', DOS_LOGICALS, ['1', 'x']),
    'dos uuid: none': set('--part-uuid', DOS_LOGICALS, ['1']),
  };
  for (const [name, c] of Object.entries(cases)) it(name, () => expectSame(name, c));
});

describe('ptable delete / activate / reorder / grow against sfdisk', () => {
  const cases: Record<string, Case> = {
    'delete: gpt 2': set('--delete', GPT5, ['2']),
    'delete: gpt all': set('--delete', GPT5, []),
    'delete: gpt 1 3 5': set('--delete', GPT5, ['1', '3', '5']),
    'delete: gpt an unused one': set('--delete', GPT5, ['7']),
    'delete: dos a primary': set('--delete', DOS_LOGICALS, ['1']),
    'delete: dos the first logical one (the next EBR moves to the extended start)': set('--delete', DOS_LOGICALS, ['5']),
    'delete: dos a middle logical one (the link skips it; its CHS as noted)': { ...set('--delete', DOS_LOGICALS, ['6']), chsDiffersAt: 8192 },
    'delete: dos the last logical one': set('--delete', DOS_LOGICALS, ['7']),
    'delete: dos 5 6 (renumbered: 6 is then the last)': set('--delete', DOS_LOGICALS, ['5', '6']),
    'delete: dos 7 6 5': set('--delete', DOS_LOGICALS, ['7', '6', '5']),
    'delete: dos the extended one': set('--delete', DOS_LOGICALS, ['4']),
    'delete: dos all': set('--delete', DOS_LOGICALS, []),
    'activate: dos 1 (util-linux dos activate)': set('--activate', DOS_LOGICALS, ['1']),
    'activate: dos a logical one and a primary': set('--activate', DOS_LOGICALS, ['5', '1']),
    'activate: dos list': set('--activate', DOS_LOGICALS, []),
    'activate: dos none (-)': set('--activate', DOS_LOGICALS, ['-']),
    'activate: dos an unused one': set('--activate', DOS_LOGICALS, ['8']),
    'activate: gpt sets the protective MBR flag': set('--activate', GPT5, ['1']),
    'activate: gpt entry 2 of the protective MBR, empty (sfdisk sets it all the same)': set('--activate', GPT5, ['2']),
    'activate: gpt list': set('--activate', GPT5, []),
    'activate: gpt entry 5 (the protective MBR has 4)': set('--activate', GPT5, ['5']),
    'reorder: gpt (util-linux gpt reorder)': set('--reorder', GPT_UNSORTED, []),
    'reorder: gpt already in order': set('--reorder', GPT5, []),
    'reorder: dos primaries': set('--reorder', DOS_UNSORTED, []),
    'grow: gpt (util-linux gpt resize)': { setup: 'label: gpt\n,10M,S,*\n', sfdisk: ['-q', '-N', '1', 'DISK'], ptable: ['grow', 'DISK', '1'] },
    'grow: dos logical (util-linux dos resize-logical)': {
      setup: 'label: dos\n,1M\n,1M\n,1M\n,10M,E\n,1M\n,1M\n',
      sfdisk: ['-q', '-N', '6', 'DISK'],
      ptable: ['grow', 'DISK', '6'],
    },
  };
  for (const [name, c] of Object.entries(cases)) {
    it(name, () => {
      const grow = c.sfdisk.includes('-N');
      if (!grow) return expectSame(name, c);
      // sfdisk -N N reads its line from stdin
      const r = replay(dir, name, {
        bytes: 64 * MiB,
        setup: (f) => sfdiskWrite(f, c.setup),
        oracle: { command: 'sfdisk', args: ['--no-reread', '--no-tell-kernel', ...c.sfdisk] },
        ptable: c.ptable,
        input: ',+\n',
      });
      expect(r.oracle.status).toBe(0);
      expect(r.ptable.status, r.ptable.stderr).toBe(0);
      expect(imageDifference(r.oracle.image, r.ptable.image, 512)).toBeNull();
    });
  }

  const on4k = (c: Case): Case => ({ ...c, sectorSize: 4096 });
  const k4: Record<string, Case> = {
    'activate: dos 2, 4096-byte sectors': on4k(set('--activate', DOS_LOGICALS, ['2'])),
    'delete: dos the first logical one, 4096-byte sectors': on4k(set('--delete', DOS_LOGICALS, ['5'])),
    'delete: gpt 2, 4096-byte sectors': on4k(set('--delete', GPT5, ['2'])),
    'part-attrs: gpt, 4096-byte sectors': on4k(set('--part-attrs', GPT5, ['2', 'RequiredPartition,GUID:63'])),
    'reorder: gpt, 4096-byte sectors': on4k(set('--reorder', 'label: gpt\nstart=1024, size=256\nstart=256, size=256\n', [])),
  };
  for (const [name, c] of Object.entries(k4)) it(name, () => expectSame(name, c));
});
