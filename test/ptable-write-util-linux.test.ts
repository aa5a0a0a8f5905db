/**
 * util-linux's own sfdisk tests (tests/ts/sfdisk/{script,dump,dos,gpt} of the util-linux mirror),
 * the subtests that write a table from a script, replayed on image files: the same script for
 * sfdisk 2.38.1 and `ptable write`, the bytes compared (random ids normalised; where the script
 * gives every id, compared as they are), and `ptable dump` against `sfdisk -d` of the result (the
 * write-dump subtests). The scripts are copied from the mirror with ${TS_DEVICE} as /dev/sdx;
 * the -N/--append subtests (resize...) are engineer B's, only their setup scripts are here.
 * `--unit S` (sfdisk's deprecated, sectors-only option) is given to sfdisk only.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ptable, useTempDir } from './helpers.js';
import { imageDifference, replay } from './sfdisk-oracle.js';

let dir = '';
useTempDir('ptable-write-util-linux-', (d) => (dir = d));

const MiB = 1024 * 1024;
const SFDISK = ['--no-reread', '--no-tell-kernel'];

interface Subtest {
  suite: string;
  name: string;
  /** The scsi_debug device's size in MiB. */
  mb: number;
  sfdiskArgs: string[];
  script: string;
}

const SUBTESTS: Subtest[] = [
  { suite: 'script', name: 'type-and-id', mb: 50, sfdiskArgs: [], script: "unit: sectors\nlabel: gpt\nlabel-id: 3b8559db-33af-43e9-befc-c331d829b539\n\n/dev/sdx1 : start=2048,  size=6144, Id=44479540-F297-41B2-9AF7-D131D5F0458A, uuid=4dd6948a-44f8-4e6c-8bdc-064f740704f8\n/dev/sdx2 : start=8192,  size=6144, id=44479540-F297-41B2-9AF7-D131D5F0458A, uuid=44b51def-5f04-465a-91aa-2889a62d8e49\n/dev/sdx3 : start=14336, size=6144, type=44479540-F297-41B2-9AF7-D131D5F0458A, uuid=643e1d0d-bc02-4ced-b83b-86121062858f\n/dev/sdx4 : start=20480, size=81887,Type=44479540-F297-41B2-9AF7-D131D5F0458A, uuid=d2a29b0a-fdee-40c3-9bae-b9fa782c986c\n" },
  { suite: 'script', name: 'separator', mb: 50, sfdiskArgs: [], script: "unit: sectors\nlabel: gpt\nlabel-id: 3b8559db-33af-43e9-befc-c331d829b539\n\n/dev/sdx1 : start=2048 size=6144   uuid=4dd6948a-44f8-4e6c-8bdc-064f740704f8\n/dev/sdx2 : start=8192,size=6144,  uuid=44b51def-5f04-465a-91aa-2889a62d8e49 ,type=44479540-F297-41B2-9AF7-D131D5F0458A\n/dev/sdx3 : start=14336 , size=6144 ,uuid=643e1d0d-bc02-4ced-b83b-86121062858f\n/dev/sdx4 : start=20480; size=81887 ;     uuid=d2a29b0a-fdee-40c3-9bae-b9fa782c986c\n" },
  { suite: 'script', name: 'quotes', mb: 50, sfdiskArgs: [], script: "unit: sectors\nlabel: gpt\nlabel-id: 3b8559db-33af-43e9-befc-c331d829b539\n\n/dev/sdx1 : start=2048  uuid=\"4dd6948a-44f8-4e6c-8bdc-064f740704f8\" size=6144\n/dev/sdx2 : start= 8192  uuid=\"44b51def-5f04-465a-91aa-2889a62d8e49\" , size=6144\n/dev/sdx3: start=14336 uuid=\"643e1d0d-bc02-4ced-b83b-86121062858f\",size=6144\n/dev/sdx4  : start=20480 uuid=\"d2a29b0a-fdee-40c3-9bae-b9fa782c986c\",     size=6144\n" },
  { suite: 'script', name: 'broken-1', mb: 50, sfdiskArgs: [], script: "unit: sectors\nlabel: gpt\nlabel-id: 3b8559db-33af-43e9-befc-c331d829b539\n\n/dev/sdx1 : start =2048  uuid=\"4dd6948a-44f8-4e6c-8bdc-064f740704f8\" size=6144\n" },
  { suite: 'script', name: 'broken-2', mb: 50, sfdiskArgs: [], script: "unit: sectors\nlabel: gpt\nlabel-id: 3b8559db-33af-43e9-befc-c331d829b539\n\n/dev/sdx1 : start=2048uuid=\"4dd6948a-44f8-4e6c-8bdc-064f740704f8\" size=6144\n" },
  { suite: 'script', name: 'broken-3', mb: 50, sfdiskArgs: [], script: "unit: sectors\nlabel: gpt\nlabel-id: 3b8559db-33af-43e9-befc-c331d829b539\n\n/dev/sdx1 : start=2048 uuid=,\"4dd6948a-44f8-4e6c-8bdc-064f740704f8\" size=6144\n" },
  { suite: 'script', name: 'broken-4', mb: 50, sfdiskArgs: [], script: "unit: sectors\nlabel: gpt\nlabel-id: 3b8559db-33af-43e9-befc-c331d829b539\n\n/dev/sdx1 : start=2048 uuid=\"4dd6948a-44f8-4e6c-8bdc-064f740704f8 size=6144\n" },
  { suite: 'script', name: 'broken-5', mb: 50, sfdiskArgs: [], script: "unit: sectors\nlabel: gpt\nlabel-id: 3b8559db-33af-43e9-befc-c331d829b539\n\n/dev/sdx1 : start=2048 uuid=4dd6948a-44f8-4e6c-8bdc-064f740704f8\" size=6144\n" },
  { suite: 'dump', name: 'v2.32', mb: 100, sfdiskArgs: [], script: "label: gpt\nlabel-id: 613005F9-1C8C-E141-8AEB-F32E8E296C75\ndevice: /dev/sdx\nunit: sectors\nfirst-lba: 2048\nlast-lba: 204766\n\n/dev/sdx1 : start=        2048, size=       20480, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=28A432A3-8D63-3142-B9F5-68A2BF2BC60B\n/dev/sdx2 : start=       22528, size=       22528, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=6A7D17FC-7252-564A-9B68-5E2107999BF1\n/dev/sdx3 : start=       45056, size=       24576, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=26C303E4-0321-3346-B9EF-BDD39BEA1166\n/dev/sdx4 : start=       69632, size=      135135, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=AF79D434-C8B3-2445-80FB-317AB157447C\n" },
  { suite: 'dump', name: 'v2.35', mb: 100, sfdiskArgs: [], script: "label: gpt\nlabel-id: 613005F9-1C8C-E141-8AEB-F32E8E296C75\ndevice: /dev/sdx\nunit: sectors\nfirst-lba: 2048\nlast-lba: 204766\nsector-size: 512\n\n/dev/sdx1 : start=        2048, size=       20480, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=28A432A3-8D63-3142-B9F5-68A2BF2BC60B\n/dev/sdx2 : start=       22528, size=       22528, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=6A7D17FC-7252-564A-9B68-5E2107999BF1\n/dev/sdx3 : start=       45056, size=       24576, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=26C303E4-0321-3346-B9EF-BDD39BEA1166\n/dev/sdx4 : start=       69632, size=      135135, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=AF79D434-C8B3-2445-80FB-317AB157447C\n" },
  { suite: 'dos', name: 'simple-commas', mb: 50, sfdiskArgs: ["--unit", "S"], script: " 2048,6144,L\n8192, 6144,S\n14336 , 6144 ,\n20480,,E\n,6144 ,\n,,\n" },
  { suite: 'dos', name: 'simple-space', mb: 50, sfdiskArgs: ["--unit", "S"], script: " 2048 6144 L\n8192  6144 S\n,,\n" },
  { suite: 'dos', name: 'read-dump-case', mb: 50, sfdiskArgs: ["--unit", "S"], script: "unit: sectors\nlabel-id: 0x1ddc8a79\n\n/dev/sdx1 : stArt=     2048, sIZe=     6144, id=83, bootAble\n" },
  { suite: 'dos', name: 'read-dump', mb: 50, sfdiskArgs: ["--unit", "S"], script: "unit: sectors\nlabel-id: 0x1ddc8a79\n\n/dev/sdx1 : start=     2048, size=     6144, Id=83, bootable\n/dev/sdx2 : start=     8192, size=     6144, Id=82\n/dev/sdx3 : start=    14336, size=     6144, Id=83\n/dev/sdx4 : start=    20480, size=    81920, Id= 5\n/dev/sdx5 : start=    20481, size=     6144, Id=83\n/dev/sdx6 : start=    26626, size=    75774, Id=83\n" },
  { suite: 'dos', name: 'explicit-size', mb: 50, sfdiskArgs: ["--unit", "S"], script: "label: dos\n1, 1000, L\n1001, 1000, S\n2001, 1000\n3001,,E\n3002,1000,L\n4003,1000,L\n5004,,L\n" },
  { suite: 'dos', name: 'resize', mb: 50, sfdiskArgs: [], script: "label: dos\n,10M,S,*\n" },
  { suite: 'dos', name: 'resize-empty-extended', mb: 50, sfdiskArgs: [], script: "label: dos\n,1M\n,2M,E\n" },
  { suite: 'dos', name: 'reduce-empty-extended', mb: 50, sfdiskArgs: [], script: "label: dos\n,1M\n,5M,E\n" },
  { suite: 'dos', name: 'resize-extended', mb: 50, sfdiskArgs: [], script: "label: dos\n,1M\n,1M\n,1M\n,5M,E\n,1M\n,1M\n" },
  { suite: 'dos', name: 'resize-logical', mb: 50, sfdiskArgs: [], script: "label: dos\n,1M\n,1M\n,1M\n,10M,E\n,1M\n,1M\n" },
  { suite: 'dos', name: 'dump-old', mb: 50, sfdiskArgs: [], script: "# partition table of /dev/sdc\nunit: sectors\n\n/dev/sdc1 : start=     2048, size=    49999, Id=83, bootable\n/dev/sdc2 : start=        0, size=        0, Id= 0\n/dev/sdc3 : start=        0, size=        0, Id= 0\n/dev/sdc4 : start=        0, size=        0, Id= 0\n" },
  { suite: 'dos', name: 'dump-gaps', mb: 50, sfdiskArgs: [], script: "# partition table of /dev/sdc\nunit: sectors\n\n/dev/sdc1 : start=     2048, size=    49999, Id=83, bootable\n/dev/sdc2 : start=        0, size=        0, Id= 0\n/dev/sdc3 : start=    52048, size=    49999, Id=83\n/dev/sdc4 : start=        0, size=        0, Id= 0\n" },
  { suite: 'dos', name: 'default-vs-gap1', mb: 50, sfdiskArgs: [], script: "3MiB 5MiB L\n- 6MiB L\n" },
  { suite: 'dos', name: 'default-vs-gap2', mb: 50, sfdiskArgs: [], script: "4MiB 3MiB L\n13MiB 5MiB L\n- 4MiB L\n- 2MiB L\n- - L\n" },
  { suite: 'dos', name: 'sizes-vs-gaps', mb: 50, sfdiskArgs: [], script: "2048 1023 L -\n4096 4095 L -\n8192 8191 L -\n" },
  { suite: 'gpt', name: 'all-defaults', mb: 50, sfdiskArgs: ["--unit", "S"], script: "label: gpt\nlabel-id: b181c399-4711-4c52-8b65-9e764541218d\n\n,5M\n, 5M, L\n, 5M,S\n, 5M, 4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709\n, ,\n" },
  { suite: 'gpt', name: 'read-dump', mb: 50, sfdiskArgs: [], script: "unit: sectors\nlabel: gpt\nlabel-id: 3b8559db-33af-43e9-befc-c331d829b539\n\n/dev/sdx1 : start=2048,  size=6144, type=44479540-F297-41B2-9AF7-D131D5F0458A, uuid=4dd6948a-44f8-4e6c-8bdc-064f740704f8\n/dev/sdx2 : start=8192,  size=6144, uuid=44b51def-5f04-465a-91aa-2889a62d8e49\n/dev/sdx3 : start=14336, size=6144, uuid=643e1d0d-bc02-4ced-b83b-86121062858f\n/dev/sdx4 : start=20480, size=81887,uuid=d2a29b0a-fdee-40c3-9bae-b9fa782c986c, name=\"GPT is the best\"\n" },
];

/** Whether the script names every random id (label-id, and for gpt each partition's uuid). */
function givesEveryId(script: string): boolean {
  if (!/^label-id:/m.test(script)) return false;
  const lines = script.split('\n').filter((l) => /(start|size)\s*=/i.test(l) || /^\s*[\d,]/.test(l));
  return !/^label: gpt/m.test(script) || lines.every((l) => /uuid=/i.test(l));
}

describe('util-linux sfdisk tests, write subtests replayed against sfdisk 2.38.1', () => {
  it.each(SUBTESTS.map((t) => [`${t.suite}/${t.name}`, t] as const))('%s', (_name, t) => {
    const r = replay(dir, `${t.suite}-${t.name}`, {
      bytes: t.mb * MiB,
      oracle: { command: 'sfdisk', args: [...SFDISK, ...t.sfdiskArgs, 'DISK'] },
      ptable: ['write', 'DISK'],
      input: t.script,
    });
    if (r.oracle.status !== 0) {
      // A script sfdisk refuses: ptable refuses it too (exit 6, the line named), and neither writes.
      expect(r.ptable.status, r.ptable.stderr).toBe(6);
      expect(r.ptable.stderr).toMatch(/^ptable: .*script line \d+: /);
      expect(r.oracle.image.equals(Buffer.alloc(r.oracle.image.length))).toBe(true);
      expect(r.ptable.image.equals(Buffer.alloc(r.ptable.image.length))).toBe(true);
      return;
    }
    expect(r.ptable.status, r.ptable.stderr).toBe(0);
    expect(imageDifference(r.oracle.image, r.ptable.image, 512)).toBeNull();
    if (givesEveryId(t.script)) expect(imageDifference(r.oracle.image, r.ptable.image, 512, false)).toBeNull();
  });
});

describe('write-dump: ptable dump of what ptable wrote is sfdisk -d of what sfdisk wrote', () => {
  it.each(SUBTESTS.filter((t) => givesEveryId(t.script)).map((t) => [`${t.suite}/${t.name}`, t] as const))('%s', (_name, t) => {
    const file = `${dir}/dump-${t.suite}-${t.name}.img`;
    const r = replay(dir, `dump-${t.suite}-${t.name}`, {
      bytes: t.mb * MiB,
      oracle: { command: 'sfdisk', args: [...SFDISK, ...t.sfdiskArgs, 'DISK'] },
      ptable: ['write', 'DISK'],
      input: t.script,
    });
    if (r.oracle.status !== 0) return expect(r.ptable.status).toBe(6);
    fs.writeFileSync(file, r.ptable.image);
    const ours = ptable(['dump', file]);
    fs.writeFileSync(file, r.oracle.image);
    const theirs = spawnSync('sfdisk', ['-d', file], { encoding: 'utf8' });
    fs.rmSync(file);
    expect(ours.status, ours.stderr).toBe(0);
    expect(ours.stdout).toBe(theirs.stdout);
  });
});
