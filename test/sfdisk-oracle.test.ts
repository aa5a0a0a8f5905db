/**
 * The oracle harness itself: it must see a difference where there is one, and none where the
 * two tools wrote the same table with different random ids.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { sfdiskWrite, useTempDir } from './helpers.js';
import { imageDifference, replay } from './sfdisk-oracle.js';

let dir = '';
useTempDir('sfdisk-oracle-', (d) => {
  dir = d;
});

const MiB = 1024 * 1024;

describe('the sfdisk oracle harness', () => {
  it('finds two GPT tables with different random ids equal, and a different start unequal', () => {
    const same = replay(dir, 'same', { bytes: 16 * MiB, oracle: { command: 'sfdisk', args: ['-q', 'DISK'] }, ptable: ['write', 'DISK'], input: 'label: gpt\n,4M,L\n' });
    expect(same.oracle.status).toBe(0);
    expect(same.ptable.status).toBe(0);
    expect(same.oracle.image.equals(same.ptable.image)).toBe(false); // the random GUIDs differ
    expect(imageDifference(same.oracle.image, same.ptable.image, 512)).toBeNull();
    const other = replay(dir, 'other', { bytes: 16 * MiB, oracle: { command: 'sfdisk', args: ['-q', 'DISK'] }, ptable: ['write', 'DISK'], input: 'label: gpt\n,4M,L\n' });
    const moved = Buffer.from(other.ptable.image);
    moved.writeUInt8(moved[1024 + 32]! + 1, 1024 + 32); // first LBA of entry 1
    expect(imageDifference(other.oracle.image, moved, 512)).toMatch(/^byte 1056 \(sector 2, \+32\)/);
  });

  it('gives both tools the same prepared image', () => {
    const r = replay(dir, 'setup', {
      bytes: 8 * MiB,
      setup: (img) => sfdiskWrite(img, 'label: dos\nlabel-id: 0x01020304\n,2M,83\n'),
      oracle: { command: 'sfdisk', args: ['-q', '--no-reread', '--no-tell-kernel', 'DISK', '1'] },
      ptable: ['write', '-N', '1', 'DISK'],
      input: ',,c\n',
    });
    expect(r.oracle.status).toBe(0);
    expect(r.oracle.image.readUInt32LE(440)).toBe(0x01020304);
    expect(fs.existsSync(dir)).toBe(true);
  });
});
