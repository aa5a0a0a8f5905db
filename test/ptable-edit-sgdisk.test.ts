/**
 * sgdisk's -n (new partition) and -d (delete) reached through ptable's edits: the same table
 * bytes as `sgdisk -n N:START:END` and `sgdisk -d N` (sgdisk 1.0.9) from the script line or the
 * delete that says the same, random GUIDs normalised. What differs is said where it does: sgdisk's
 * "0" end is the last usable sector, sfdisk's default end of a last partition is aligned down.
 */
import { describe, expect, it } from 'vitest';
import { appendFromScript } from '../src/partition/edit-script.js';
import { deletePartitions } from '../src/partition/edit.js';
import type { PartitionTable } from '../src/partition/model.js';
import { useTempDir } from './helpers.js';
import { replayEdit } from './ptable-edit-oracle.js';
import { imageDifference } from './sfdisk-oracle.js';

let dir = '';
useTempDir('ptable-edit-sgdisk-', (d) => {
  dir = d;
});

const MiB = 1024 * 1024;
const TWO = 'label: gpt\n,10M,L\n,10M,L\n';

function compare(name: string, sgdisk: string[], edit: (t: PartitionTable) => PartitionTable, setupScript = TWO): string | null {
  const r = replayEdit(dir, name, { bytes: 64 * MiB, setupScript, sgdisk: [...sgdisk, 'DISK'], edit });
  expect(r.oracle.status, r.oracle.stderr + r.oracle.stdout).toBe(0);
  expect(r.ours.error, String(r.ours.error)).toBeUndefined();
  return imageDifference(r.oracle.image, r.ours.image, 512);
}

describe("sgdisk -n / -d and ptable's --append / -N / delete: the same table bytes", () => {
  it("sgdisk -n 3:0:+10M is --append ',10M'", () => {
    expect(compare('n3', ['-n', '3:0:+10M'], (t) => appendFromScript(t, ',10M\n').table)).toBeNull();
  });

  it("sgdisk -n 3:0:+10M -t 3:8200 is --append ',10M,S'", () => {
    expect(compare('n3-swap', ['-n', '3:0:+10M', '-t', '3:8200'], (t) => appendFromScript(t, ',10M,S\n').table)).toBeNull();
  });

  it("sgdisk -n 5:0:+1M (a chosen slot) is --append '5 : size=1M' (or -N 5 ',1M')", () => {
    expect(compare('n5', ['-n', '5:0:+1M'], (t) => appendFromScript(t, '5 : size=1M\n').table)).toBeNull();
    expect(compare('n5-N', ['-n', '5:0:+1M'], (t) => appendFromScript(t, ',1M\n', 5).table)).toBeNull();
  });

  it("sgdisk -n 0:0:0 (to the last usable sector) is an explicit size; sfdisk's ',,' ends a grain lower", () => {
    // 43008 .. 131038 (the last usable LBA of 64 MiB): 88031 sectors
    expect(compare('n0', ['-n', '0:0:0'], (t) => appendFromScript(t, ',88031\n').table)).toBeNull();
    expect(compare('n0-default', ['-n', '0:0:0'], (t) => appendFromScript(t, ',,\n').table)).toMatch(/^byte \d+ \(sector 2,/);
  });

  it('sgdisk -n 3:2048:+1M in the gap before the first partition is --append "start=2048, size=1M"', () => {
    const setup = 'label: gpt\nstart=4096, size=10M\nstart=24576, size=10M\n';
    expect(compare('n3-gap', ['-n', '3:2048:+1M'], (t) => appendFromScript(t, 'start=2048, size=1M\n').table, setup)).toBeNull();
  });

  it('sgdisk -d 2 is delete 2; -d 1 -d 2 is delete 1 2', () => {
    expect(compare('d2', ['-d', '2'], (t) => deletePartitions(t, [2]))).toBeNull();
    expect(compare('d12', ['-d', '1', '-d', '2'], (t) => deletePartitions(t, [1, 2]))).toBeNull();
  });
});
