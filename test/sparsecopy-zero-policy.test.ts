/**
 * --zero=compare|skip|zeroout|write on block devices (loop devices, root only), and on an
 * overlaid file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loopUnavailableReason, makeTempDir, patternBytes, sparsecopy, withLoop, writeSparseFile } from './helpers.js';

const KiB = 1024;
const DEVICE_BYTES = 2048 * KiB;
let dir: string;
let src: string;
let bytes: Buffer;
const ZERO_BYTES = 1024 * KiB - 64 * KiB - 4 * KiB; // the source's zeros, see the pieces below

beforeAll(() => {
  dir = makeTempDir('sc-zero-');
  src = path.join(dir, 'src.img');
  writeSparseFile(src, 1024 * KiB, [
    { offset: 0, data: patternBytes(64 * KiB, 11) },
    { offset: 512 * KiB, data: patternBytes(4 * KiB, 12) },
  ]);
  bytes = fs.readFileSync(src);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Summary {
  real: number;
  sparse: number;
  nonzerodest: number;
  bytesChecked: number;
  zerosWritten: number;
  zeroedOut: number;
}

const reason = loopUnavailableReason();
if (reason) console.warn(`skipping --zero device tests: ${reason}`);

describe.skipIf(reason !== null)('--zero on a block device holding old data', () => {
  const run = async (args: string[]): Promise<{ status: number | null; device: Buffer; summary: Summary | null; stderr: string }> => {
    const backing = path.join(dir, `disk-${args.join('_').replace(/[^a-z0-9_-]/gi, '')}.img`);
    fs.writeFileSync(backing, Buffer.alloc(DEVICE_BYTES, 0xaa));
    return withLoop(backing, (dev) => {
      const r = sparsecopy(['--json', ...args, src, dev]);
      const device = fs.readFileSync(dev).subarray(0, bytes.length);
      return { status: r.status, device, summary: r.status === 0 ? (JSON.parse(r.stdout) as Summary) : null, stderr: r.stderr };
    });
  };

  it('compare (default) reads the device and writes zeros where it holds data', async () => {
    const { status, device, summary, stderr } = await run([]);
    expect(status, stderr).toBe(0);
    expect(device.equals(bytes)).toBe(true);
    expect(summary!.nonzerodest).toBe(ZERO_BYTES);
    expect(summary!.bytesChecked).toBe(ZERO_BYTES);
    expect(summary!.zeroedOut).toBe(0);
  });

  it('skip trusts the device: old data stays under the zeros', async () => {
    const { status, device, summary } = await run(['--zero=skip']);
    expect(status).toBe(0);
    expect(device.subarray(0, 64 * KiB).equals(bytes.subarray(0, 64 * KiB))).toBe(true);
    expect(device.subarray(64 * KiB, 512 * KiB).equals(Buffer.alloc(448 * KiB, 0xaa))).toBe(true);
    expect(summary!.bytesChecked).toBe(0);
    expect(summary!.nonzerodest).toBe(0);
  });

  it('-n is --zero=skip', async () => {
    const { device } = await run(['-n']);
    expect(device.subarray(64 * KiB, 512 * KiB).equals(Buffer.alloc(448 * KiB, 0xaa))).toBe(true);
  });

  it('zeroout clears the zero ranges without reading them', async () => {
    const { status, device, summary } = await run(['--zero=zeroout']);
    expect(status).toBe(0);
    expect(device.equals(bytes)).toBe(true);
    expect(summary!.bytesChecked).toBe(0);
    expect(summary!.zeroedOut + summary!.zerosWritten).toBe(ZERO_BYTES);
    expect(summary!.zeroedOut).toBeGreaterThan(0); // loop devices support BLKZEROOUT
  });

  it('zeroout unmaps where the device can: a loop device over a sparse file gives the space back', async () => {
    const backing = path.join(dir, 'disk-thin.img');
    fs.writeFileSync(backing, Buffer.alloc(DEVICE_BYTES, 0xaa));
    const allocatedBefore = fs.statSync(backing).blocks * 512;
    const r = await withLoop(backing, (dev) => {
      const result = sparsecopy(['--json', '--zero=zeroout', src, dev]);
      return { ...result, device: fs.readFileSync(dev).subarray(0, bytes.length) };
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.device.equals(bytes)).toBe(true);
    expect((JSON.parse(r.stdout) as Summary).zeroedOut).toBe(ZERO_BYTES);
    // BLKZEROOUT would have allocated the zeros in the backing file (unwritten extents); an unmap punches them.
    expect(allocatedBefore - fs.statSync(backing).blocks * 512).toBeGreaterThanOrEqual(ZERO_BYTES - 8 * KiB);
  });

  it('write writes every zero', async () => {
    const { status, device, summary } = await run(['--zero=write']);
    expect(status).toBe(0);
    expect(device.equals(bytes)).toBe(true);
    expect(summary!.zerosWritten).toBe(ZERO_BYTES);
    expect(summary!.bytesChecked).toBe(0);
    expect(summary!.real).toBe(bytes.length);
  });
});

describe('--zero on an overlaid file', () => {
  it('write overwrites old data under zeros; skip keeps it', () => {
    for (const [policy, keepsOld] of [
      ['write', false],
      ['skip', true],
    ] as const) {
      const dst = path.join(dir, `overlay-${policy}.img`);
      fs.writeFileSync(dst, Buffer.alloc(1024 * KiB, 0x77));
      const r = sparsecopy(['-o', `--zero=${policy}`, src, dst]);
      expect(r.status, r.stderr).toBe(0);
      const got = fs.readFileSync(dst);
      expect(got.subarray(0, 64 * KiB).equals(bytes.subarray(0, 64 * KiB))).toBe(true);
      expect(got[100 * KiB]).toBe(keepsOld ? 0x77 : 0);
    }
  });

  it('zeroout punches holes over old data in a file: the zeros read back and take no space', () => {
    const dst = path.join(dir, 'overlay-zeroout.img');
    fs.writeFileSync(dst, Buffer.alloc(1024 * KiB, 0x77));
    const r = sparsecopy(['-o', '--json', '--zero=zeroout', src, dst]);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(dst).equals(bytes)).toBe(true);
    expect((JSON.parse(r.stdout) as Summary).zeroedOut).toBe(ZERO_BYTES);
    expect(fs.statSync(dst).blocks * 512).toBeLessThanOrEqual(1024 * KiB - ZERO_BYTES + 8 * KiB);
  });

  it('refuses -n together with another policy', () => {
    const r = sparsecopy(['-n', '--zero=write', src, path.join(dir, 'never.img')]);
    expect(r.status).toBe(1);
    expect(fs.existsSync(path.join(dir, 'never.img'))).toBe(false);
  });
});
