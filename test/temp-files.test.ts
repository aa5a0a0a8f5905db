/**
 * Temporary names that identify their process: what a SIGKILLed copy leaves behind is removed by
 * the next run in that directory, and a running process's temporary file is never touched.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyTempName, isStaleCopyTemp, isStaleWorkDir, ownerTag, processStartTime, removeStale, workDirName } from '../src/io/temp-files.js';
import { SPARSECOPY, tempLeftovers, useTempDir, writeSparseFile, patternBytes } from './helpers.js';

let dir = '';
useTempDir('temp-files-', (d) => (dir = d));

describe('temporary names', () => {
  it('name this process and its start time, so a reused PID is not mistaken for it', () => {
    expect(ownerTag()).toBe(`${process.pid}-${processStartTime(process.pid)}`);
    expect(copyTempName('disk.img')).toMatch(new RegExp(`^\\.disk\\.img\\.sparsecopy-${ownerTag()}-[0-9a-f]{8}$`));
    expect(isStaleCopyTemp(copyTempName('disk.img'))).toBe(false);
    expect(isStaleWorkDir('fsmaker', workDirName('fsmaker'))).toBe(false);
  });

  it('are stale when the process is gone or its PID now names another process', () => {
    const dead = spawnSync('true').pid!;
    expect(isStaleCopyTemp(`.disk.img.sparsecopy-${dead}-12345-0badcafe`)).toBe(true);
    expect(isStaleCopyTemp(`.disk.img.sparsecopy-${process.pid}-1-0badcafe`)).toBe(true); // same PID, other start time
    expect(isStaleCopyTemp(`.disk.img.sparsecopy-${dead}-0badcafe`)).toBe(true); // an older release's name
    expect(isStaleWorkDir('fsmaker', `fsmaker-${dead}-77-0badcafe`)).toBe(true);
    expect(isStaleCopyTemp('disk.img')).toBe(false);
    expect(isStaleCopyTemp(`.disk.img.sparsecopy-${dead}-12345-notahex`)).toBe(false);
  });

  it('removeStale removes only stale entries, files and directories', () => {
    const dead = spawnSync('true').pid!;
    const stale = path.join(dir, `.x.sparsecopy-${dead}-5-00000001`);
    const live = path.join(dir, copyTempName('x'));
    const other = path.join(dir, 'x');
    for (const f of [stale, live, other]) fs.writeFileSync(f, 'data');
    const staleDir = path.join(dir, `fsmaker-${dead}-5-00000002`);
    fs.mkdirSync(staleDir);
    fs.writeFileSync(path.join(staleDir, 'inside'), 'x');
    expect(removeStale(dir, isStaleCopyTemp)).toEqual([path.basename(stale)]);
    expect(removeStale(dir, (n) => isStaleWorkDir('fsmaker', n))).toEqual([path.basename(staleDir)]);
    expect(fs.existsSync(live) && fs.existsSync(other)).toBe(true);
    fs.rmSync(live);
    fs.rmSync(other);
  });
});

describe('a copy killed with SIGKILL', () => {
  it('leaves a temporary file that the next copy into that directory removes', async () => {
    const source = path.join(dir, 'big.img');
    writeSparseFile(source, 256 << 20, [{ offset: 0, data: patternBytes(64 << 20) }, { offset: 128 << 20, data: patternBytes(64 << 20, 2) }]);
    const out = path.join(dir, 'out.img');
    // A pipe source that never ends keeps the copy writing its temporary file until killed.
    const child = spawn(process.execPath, [SPARSECOPY, '-q', '-', out], { stdio: ['pipe', 'ignore', 'ignore'] });
    child.stdin.on('error', () => undefined);
    child.stdin.write(patternBytes(4 << 20));
    for (let i = 0; i < 100 && tempLeftovers(dir).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(tempLeftovers(dir).length).toBe(1);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(tempLeftovers(dir).length).toBe(1); // nothing could run on SIGKILL
    const r = spawnSync(process.execPath, [SPARSECOPY, '-q', source, path.join(dir, 'other.img')]);
    expect(r.status).toBe(0);
    expect(tempLeftovers(dir)).toEqual([]);
    expect(fs.existsSync(out)).toBe(false);
  });
});
