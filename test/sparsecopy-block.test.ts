/**
 * Block devices (loop devices) as destination and source. Needs root and losetup; every device
 * attached here is detached by its exact name (withLoop).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allocatedBytes,
  lastLine,
  linesOf,
  loopUnavailableReason,
  makeTempDir,
  parseSummary,
  patternBytes,
  readRange,
  sparsecopy,
  tempLeftovers,
  withLoop,
  writeSparseFile,
} from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const DEVICE_BYTES = 4 * MiB;

const reason = loopUnavailableReason();
if (reason) console.warn(`sparsecopy block-device tests skipped: ${reason}`);

describe.skipIf(reason)('sparsecopy on block devices (loop)', () => {
  let dir: string;
  beforeAll(() => {
    dir = makeTempDir('sc-blk-');
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  let n = 0;
  const fresh = (name: string) => path.join(dir, `${name}-${++n}`);

  /** A 4 MiB backing file: non-zero pattern in [0, nonZeroBytes), a hole after. */
  function backing(nonZeroBytes = DEVICE_BYTES): { file: string; old: Buffer } {
    const file = fresh('backing');
    const old = Buffer.alloc(DEVICE_BYTES);
    patternBytes(nonZeroBytes, 99).copy(old, 0);
    writeSparseFile(file, DEVICE_BYTES, nonZeroBytes > 0 ? [{ offset: 0, data: old.subarray(0, nonZeroBytes) }] : []);
    return { file, old };
  }

  const A = patternBytes(64 * KiB, 1);
  const B = patternBytes(4 * KiB, 2);
  /** 1 MiB: [0,64K) data, [64K,192K) written zeros, [192K,320K) hole, [320K,324K) data, hole to 1 MiB. */
  function source(): { file: string; bytes: Buffer } {
    const file = fresh('src');
    writeSparseFile(file, MiB, [
      { offset: 0, data: A },
      { offset: 64 * KiB, data: Buffer.alloc(128 * KiB) },
      { offset: 320 * KiB, data: B },
    ]);
    return { file, bytes: fs.readFileSync(file) };
  }
  const dataBytes = A.length + B.length;

  const device = (dev: string) => readRange(dev, 0, DEVICE_BYTES);

  function expectPartitionWarning(stderr: string, dev: string) {
    const warning = linesOf(stderr).find((l) => l.includes('partition table not re-read'));
    expect(warning, stderr).toBeDefined();
    expect(warning).toContain(dev);
    expect(lastLine(stderr)).toMatch(/^sparsecopy: total bytes = /);
  }

  it('writes the source, zeroes non-zero blocks under its zeros, truncates nothing', async () => {
    // The device holds data in its first 512 KiB and zeros after.
    const { file, old } = backing(512 * KiB);
    const src = source();
    await withLoop(file, (dev) => {
      const r = sparsecopy(['--json', src.file, dev]);
      expect(r.status, r.stderr).toBe(0);
      expect(lastLine(r.stderr)).toMatch(/^sparsecopy: total bytes = /);
      const expected = Buffer.from(old);
      src.bytes.copy(expected, 0);
      expect(device(dev).equals(expected)).toBe(true);
      // Zero source bytes over the non-zero first 512 KiB are written; the others skipped.
      const nonzerodest = 512 * KiB - dataBytes;
      const summary = parseSummary(r.stderr);
      expect(summary).toEqual({ total: MiB, real: dataBytes + nonzerodest, sparse: MiB - dataBytes - nonzerodest, nonzerodest });
      const j = JSON.parse(r.stdout);
      expect(j.bytesChecked).toBe(MiB - dataBytes);
      expect(j.bytesRead).toBe(64 * KiB + 128 * KiB + 4 * KiB);
    });
  });

  it('warns that the partition table was not re-read (EINVAL on a loop device) and still exits 0', async () => {
    const { file } = backing();
    const src = source();
    await withLoop(file, (dev) => {
      const r = sparsecopy([src.file, dev]);
      expect(r.status, r.stderr).toBe(0);
      expectPartitionWarning(r.stderr, dev);
      expect(linesOf(r.stderr).find((l) => l.includes('partition table not re-read'))).toContain('EINVAL');
      // -q silences the warning too.
      const q = sparsecopy(['-q', src.file, dev]);
      expect(q.status, q.stderr).toBe(0);
      expect(q.stderr).toBe('');
    });
  });

  it('-n trusts the device to be zero: old data under zero blocks stays', async () => {
    const { file, old } = backing();
    const src = source();
    await withLoop(file, (dev) => {
      const r = sparsecopy(['-n', src.file, dev]);
      expect(r.status, r.stderr).toBe(0);
      const expected = Buffer.from(old);
      A.copy(expected, 0);
      B.copy(expected, 320 * KiB);
      expect(device(dev).equals(expected)).toBe(true);
      expect(parseSummary(r.stderr)).toEqual({ total: MiB, real: dataBytes, sparse: MiB - dataBytes, nonzerodest: 0 });
    });
  });

  it('--seek places the copy; -f and -o change nothing on a device', async () => {
    const { file, old } = backing();
    const src = source();
    await withLoop(file, (dev) => {
      const r = sparsecopy(['-o', '-f', '1M', '-s', '2048', src.file, dev]); // 2048 blocks = 1 MiB
      expect(r.status, r.stderr).toBe(0);
      const expected = Buffer.from(old);
      src.bytes.copy(expected, MiB);
      expect(device(dev).equals(expected)).toBe(true);
      expect(parseSummary(r.stderr).nonzerodest).toBe(MiB - dataBytes);
    });
    expect(fs.statSync(file).size).toBe(DEVICE_BYTES);
  });

  it('reads a pipe into a device', async () => {
    const { file, old } = backing(MiB);
    const input = Buffer.concat([patternBytes(10_000, 3), Buffer.alloc(100_000), patternBytes(5, 4)]);
    await withLoop(file, (dev) => {
      const r = sparsecopy(['-', dev], { input });
      expect(r.status, r.stderr).toBe(0);
      const expected = Buffer.from(old);
      input.copy(expected, 0);
      expect(device(dev).equals(expected)).toBe(true);
      const s = parseSummary(r.stderr);
      expect(s.total).toBe(input.length);
      expect(s.real + s.sparse).toBe(input.length);
    });
  });

  it('refuses a source larger than the device (exit 15) before writing a byte', async () => {
    const { file, old } = backing();
    const big = fresh('big');
    writeSparseFile(big, DEVICE_BYTES + 512, [{ offset: 0, data: patternBytes(8 * KiB, 5) }]);
    const src = source();
    const exact = fresh('exact'); // exactly the device's size: one byte of seek is too much
    writeSparseFile(exact, DEVICE_BYTES, []);
    await withLoop(file, (dev) => {
      for (const args of [[big, dev], ['-s', '3584K', src.file, dev], ['-s', '1B', exact, dev]]) {
        const r = sparsecopy(args);
        expect(r.status, r.stderr).toBe(15);
        expect(linesOf(r.stderr)).toHaveLength(1);
        expect(r.stderr).toContain(dev);
        expect(device(dev).equals(old)).toBe(true);
      }
      // -m makes it fit.
      const r = sparsecopy(['-m', '4M', big, dev]);
      expect(r.status, r.stderr).toBe(0);
      expect(device(dev).equals(fs.readFileSync(big).subarray(0, DEVICE_BYTES))).toBe(true);
    });
  });

  it('a stream larger than the device fails, even when its excess is zeros', async () => {
    const { file } = backing();
    await withLoop(file, (dev) => {
      // Data past the end cannot be written.
      const dataTail = sparsecopy(['-', dev], { input: Buffer.concat([Buffer.alloc(DEVICE_BYTES), patternBytes(64 * KiB, 8)]) });
      expect(dataTail.status, dataTail.stderr).not.toBe(0);
      expect(dataTail.stderr).toContain(dev);
      // Zeros past the end do not fit either: the copy must not report success for bytes that
      // went nowhere.
      const zeroTail = sparsecopy(['-', dev], { input: Buffer.concat([patternBytes(DEVICE_BYTES, 9), Buffer.alloc(64 * KiB)]) });
      expect(zeroTail.status, zeroTail.stderr).not.toBe(0);
      expect(zeroTail.stderr).toContain(dev);
      expect(zeroTail.stderr).not.toMatch(/total bytes = /);
      const zeroStream = sparsecopy(['-m', '5M', '/dev/zero', dev]);
      expect(zeroStream.status, zeroStream.stderr).not.toBe(0);
    });
  });

  it('--seek past the end of the device: exit 4, nothing written', async () => {
    const { file, old } = backing();
    const src = source();
    await withLoop(file, (dev) => {
      for (const seek of ['5M', '4194305B']) {
        const r = sparsecopy(['-s', seek, src.file, dev]);
        expect(r.status, r.stderr).toBe(4);
        expect(linesOf(r.stderr)).toHaveLength(1);
        expect(r.stderr).toContain(dev);
      }
      expect(device(dev).equals(old)).toBe(true);
      // Exactly at the end with nothing to copy is not past it.
      const r = sparsecopy(['-s', '4M', '/dev/null', dev]);
      expect(r.status, r.stderr).toBe(0);
    });
  });

  it('-c refuses a device whose first block at the seek position is not zero (exit 11)', async () => {
    const { file, old } = backing(MiB);
    const src = source();
    await withLoop(file, (dev) => {
      const r = sparsecopy(['-c', src.file, dev]);
      expect(r.status, r.stderr).toBe(11);
      expect(r.stderr).toContain(dev);
      expect(device(dev).equals(old)).toBe(true);
      const ok = sparsecopy(['-c', '-s', '2M', src.file, dev]);
      expect(ok.status, ok.stderr).toBe(0);
      expect(device(dev).subarray(2 * MiB, 3 * MiB).equals(src.bytes)).toBe(true);
    });
  });

  it('source and destination the same device (exit 13), also through a symlink', async () => {
    const { file, old } = backing();
    await withLoop(file, (dev) => {
      const link = fresh('devlink');
      fs.symlinkSync(dev, link);
      for (const [s, d] of [
        [dev, dev],
        [link, dev],
        [dev, link],
      ]) {
        const r = sparsecopy([s!, d!]);
        expect(r.status, r.stderr).toBe(13);
        expect(linesOf(r.stderr)).toHaveLength(1);
        expect(r.stderr).toContain(d!);
      }
      expect(device(dev).equals(old)).toBe(true);
    });
  });

  it('a device as source: read whole, copied into a sparse file', async () => {
    const file = fresh('backing');
    writeSparseFile(file, DEVICE_BYTES, [
      { offset: 0, data: patternBytes(64 * KiB, 6) },
      { offset: 2 * MiB, data: Buffer.alloc(512 * KiB) },
      { offset: 3 * MiB, data: patternBytes(64 * KiB, 7) },
    ]);
    await withLoop(file, (dev) => {
      const dst = fresh('dst');
      const r = sparsecopy(['--json', dev, dst]);
      expect(r.status, r.stderr).toBe(0);
      expect(fs.readFileSync(dst).equals(fs.readFileSync(file))).toBe(true);
      expect(allocatedBytes(dst)).toBeLessThanOrEqual(128 * KiB);
      const j = JSON.parse(r.stdout);
      expect(j.total).toBe(DEVICE_BYTES);
      expect(j.real).toBe(128 * KiB);
      expect(tempLeftovers(dir)).toEqual([]);
    });
  });

  describe('a device in use', () => {
    async function holdExclusively(dev: string): Promise<ChildProcess> {
      const child = spawn(
        process.execPath,
        ['-e', `const fs=require('fs');fs.openSync(${JSON.stringify(dev)},fs.constants.O_RDONLY|fs.constants.O_EXCL);console.log('ready');setInterval(()=>{},1000);`],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (d: Buffer) => {
          if (d.toString().includes('ready')) resolve();
        });
        child.on('exit', (code) => reject(new Error(`holder exited with ${code}`)));
      });
      return child;
    }

    async function release(child: ChildProcess): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    }

    it('held open with O_EXCL by another process: exit 14 unless --force', async () => {
      const { file, old } = backing();
      const src = source();
      await withLoop(file, async (dev) => {
        const holder = await holdExclusively(dev);
        try {
          const r = sparsecopy([src.file, dev]);
          expect(r.status, r.stderr).toBe(14);
          expect(linesOf(r.stderr)).toHaveLength(1);
          expect(r.stderr).toContain(dev);
          expect(r.stderr).toContain('--force');
          expect(device(dev).equals(old)).toBe(true);
          const forced = sparsecopy(['--force', src.file, dev]);
          expect(forced.status, forced.stderr).toBe(0);
          const expected = Buffer.from(old);
          src.bytes.copy(expected, 0);
          expect(device(dev).equals(expected)).toBe(true);
        } finally {
          await release(holder);
        }
      });
    });

    it('mounted: exit 14, nothing written', async (ctx) => {
      const file = fresh('fs');
      writeSparseFile(file, 8 * MiB, []);
      try {
        execFileSync('mkfs.ext4', ['-q', '-F', file], { stdio: 'pipe' });
      } catch (err) {
        console.warn(`skipping the mounted-device case: mkfs.ext4 failed: ${String(err)}`);
        ctx.skip();
      }
      const before = fs.readFileSync(file);
      const mountPoint = fresh('mnt');
      fs.mkdirSync(mountPoint);
      const src = source();
      await withLoop(file, (dev) => {
        try {
          execFileSync('mount', ['-t', 'ext4', dev, mountPoint], { stdio: 'pipe' });
        } catch (err) {
          console.warn(`skipping the mounted-device case: mount is not permitted here: ${String(err).split('\n')[0]}`);
          ctx.skip();
        }
        try {
          const r = sparsecopy([src.file, dev]);
          expect(r.status, r.stderr).toBe(14);
          expect(linesOf(r.stderr)).toHaveLength(1);
          expect(r.stderr).toContain(dev);
          expect(r.stderr).toContain('mounted');
        } finally {
          execFileSync('umount', [mountPoint]);
        }
        // Mounting updates the superblock, so compare only where the copy's data would have
        // landed and a mount does not write: the boot area and the range of B.
        const after = fs.readFileSync(file);
        expect(after.subarray(320 * KiB, 324 * KiB).equals(before.subarray(320 * KiB, 324 * KiB))).toBe(true);
        expect(after.subarray(0, 1024).equals(before.subarray(0, 1024))).toBe(true);
      });
    });
  });
});
