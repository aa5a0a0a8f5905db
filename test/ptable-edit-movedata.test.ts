/**
 * -N N --move-data[=LOGFILE] against sfdisk 2.38.1: util-linux's tests/ts/sfdisk/movedata (up,
 * down, non-overlay, one after the other on the image each leaves), whole images compared (the
 * table and the moved data, every byte) and the log files compared line by line; the same on a
 * 4096-byte-sector loop device; memory bounded; sfdisk's "ignoring --move-data" cases.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDisk } from '../src/io/disk.js';
import { moveDataRefusal, moveLogPath, movePartitionData, planMoveData } from '../src/io/move-data.js';
import { copySparse, patternBytes, PTABLE, sfdiskWrite, useTempDir } from './helpers.js';
import { measured } from './hostile.js';
import { imageDifference } from './sfdisk-oracle.js';

let dir = '';
useTempDir('ptable-edit-movedata-', (d) => {
  dir = d;
});

const MiB = 1024 * 1024;

/** `ptable -N number --move-data=LOG DISK` (sfdisk's own command line), as a process; its exit status. */
function ptableMove(file: string, sectorSize: number, number: number, line: string, log: string): number | null {
  const r = spawnSync(process.execPath, [PTABLE, '--sector-size', String(sectorSize), '--no-reread', '-q', `--move-data=${log}`, '-N', String(number), file], { input: `${line}\n` });
  if (r.status !== 0) throw new Error(`ptable failed (${r.status}): ${r.stderr.toString()}`);
  return r.status;
}

function sfdiskMove(target: string, number: number, line: string, log: string): void {
  const r = spawnSync('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', `--move-data=${log}`, '-N', String(number), target], { input: `${line}\n` });
  if (r.status !== 0) throw new Error(`sfdisk failed: ${r.stderr.toString()}`);
}

function withDevice<T>(file: string, sectorSize: number, body: (device: string) => T): T {
  const device = execFileSync('losetup', ['-b', String(sectorSize), '-f', '--show', file]).toString().trim();
  try {
    return body(device);
  } finally {
    execFileSync('losetup', ['-d', device]);
  }
}

const logLines = (file: string): string[] => fs.readFileSync(file, 'utf8').split('\n').filter((l) => !l.startsWith('# Disk:') && !l.startsWith('# sfdisk:'));

describe('ptable -N N --move-data against sfdisk (util-linux movedata: up, down, non-overlay)', () => {
  for (const sectorSize of [512, 4096] as const) {
    it(`${sectorSize}-byte sectors: table and data bytes equal after each step, logs equal`, () => {
      const oracle = path.join(dir, `o${sectorSize}.img`);
      const ours = path.join(dir, `p${sectorSize}.img`);
      fs.writeFileSync(oracle, '');
      fs.truncateSync(oracle, 100 * MiB);
      const onOracle = (body: (target: string) => void): void => (sectorSize === 512 ? body(oracle) : withDevice(oracle, sectorSize, body));
      onOracle((t) => sfdiskWrite(t, ',10M,L\n'));
      // the partition's data: a pattern over all of it (util-linux uses mkfs.ext4 and an md5)
      const data = patternBytes(10 * MiB, 7);
      const fd = fs.openSync(oracle, 'r+');
      const start = sectorSize === 512 ? 2048 * 512 : 256 * 4096;
      fs.writeSync(fd, data, 0, data.length, start);
      fs.closeSync(fd);
      copySparse(oracle, ours);
      let offset = start;
      for (const [name, line, shift] of [
        ['up', '+1000,', 1000],
        ['down', '-500,', -500],
        ['non-overlay', '+30M,', (30 * MiB) / sectorSize],
      ] as const) {
        const log = path.join(dir, `${name}-${sectorSize}.log`);
        onOracle((t) => sfdiskMove(t, 1, line, `${log}.sfdisk`));
        expect(ptableMove(ours, sectorSize, 1, line, `${log}.ptable`), name).toBe(0);
        const a = fs.readFileSync(oracle);
        const b = fs.readFileSync(ours);
        expect(imageDifference(a, b, sectorSize, false), name).toBeNull();
        offset += shift * sectorSize;
        expect(a.subarray(offset, offset + data.length).equals(data), `${name}: the data moved`).toBe(true);
        const sfdiskLog = fs.readdirSync(dir).find((f) => f.startsWith(`${name}-${sectorSize}.log.sfdisk-`))!;
        expect(fs.existsSync(moveLogPath(`${log}.ptable`, ours, 1))).toBe(true);
        expect(logLines(moveLogPath(`${log}.ptable`, ours, 1))).toEqual(logLines(path.join(dir, sfdiskLog)));
      }
    });
  }

  it('moves a 64 MiB partition with a bounded heap (one 1 MiB buffer)', () => {
    const file = path.join(dir, 'big.img');
    fs.writeFileSync(file, '');
    fs.truncateSync(file, 200 * MiB);
    sfdiskWrite(file, ',64M,L\n');
    const disk = openDisk(file, { writable: true, sectorSize: 512 });
    try {
      const r = measured(() => movePartitionData(disk, { number: 1, from: 2048, to: 2048 + 100, sectors: 131072 }));
      expect(r.error).toBeUndefined();
      expect(r.heapGrowthBytes).toBeLessThan(16 * MiB);
    } finally {
      disk.close();
    }
  });

  it('through the command line: a smaller partition is refused before anything is written, an unmoved start warns and writes the table', () => {
    const file = path.join(dir, 'refuse.img');
    fs.writeFileSync(file, '');
    fs.truncateSync(file, 64 * MiB);
    sfdiskWrite(file, 'label: dos\nlabel-id: 0x0a0b0c0d\n,10M,L\n');
    const before = fs.readFileSync(file);
    const smaller = spawnSync(process.execPath, [PTABLE, 'write', '-N', '1', '--move-data', file], { input: '+1M,5M\n' });
    expect(smaller.status).toBe(8);
    expect(smaller.stderr.toString()).toMatch(/smaller than original.*nothing written/);
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    const unmoved = spawnSync(process.execPath, [PTABLE, 'write', '-N', '1', '--move-data', file], { input: ',12M\n' });
    expect(unmoved.status).toBe(0);
    expect(unmoved.stderr.toString()).toMatch(/has not been moved; ignoring --move-data/);
    expect(fs.readFileSync(file).readUInt32LE(0x1be + 12)).toBe((12 * MiB) / 512);
    const dry = spawnSync(process.execPath, [PTABLE, 'write', '-n', '-N', '1', '--move-data', file], { input: '+1M,\n' });
    expect(dry.status).toBe(0);
    expect(dry.stdout.toString()).toMatch(/move 24576 sector\(s\) of partition 1 from LBA 2048 to LBA 4096/);
    expect(fs.readFileSync(file).readUInt32LE(0x1be + 8)).toBe(2048);
  });

  it("sfdisk's refusals: start not moved, partition made smaller", () => {
    const p = { number: 1, start: 2048, size: 20480, type: '83' };
    expect(moveDataRefusal(p, { ...p })).toMatch(/has not been moved/);
    expect(moveDataRefusal(p, { ...p, start: 4096, size: 100 })).toMatch(/smaller than original/);
    expect(moveDataRefusal(p, { ...p, start: 4096 })).toBeNull();
    // ptable's plan: nothing to move, a move, or a refusal before anything is written
    expect(planMoveData(p, { ...p, size: 40000 })).toBeNull();
    expect(planMoveData(undefined, p)).toBeNull();
    expect(planMoveData(p, { ...p, start: 4096 })).toEqual({ from: 2048, to: 4096, sectors: 20480 });
    expect(() => planMoveData(p, { ...p, start: 4096, size: 100 })).toThrow(/smaller than original/);
  });
});
