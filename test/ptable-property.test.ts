/**
 * Random layouts through the whole loop: a script -> `ptable write` and `sfdisk` on two images of
 * the same size -> the table sectors are byte-identical, `sfdisk -d` of ptable's image equals
 * `ptable dump`, and `sfdisk -V` accepts it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { firstDifference, makeTempDir, prng, ptable, runTool } from './helpers.js';

const MiB = 1024 * 1024;
let dir: string;
beforeAll(() => {
  dir = makeTempDir('pt-prop-');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const GPT_TYPES = ['L', 'S', 'U', 'H', 'V', 'R', 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7'];
const DOS_TYPES = ['83', '82', 'c', '7', 'fd', '8e', 'b'];

function randomScript(rnd: () => number, diskMiB: number): string {
  const gpt = rnd() < 0.6;
  const hex = (n: number) => Array.from({ length: n }, () => Math.floor(rnd() * 16).toString(16)).join('').toUpperCase();
  const guid = () => `${hex(8)}-${hex(4)}-4${hex(3)}-8${hex(3)}-${hex(12)}`;
  const lines = [`label: ${gpt ? 'gpt' : 'dos'}`, `label-id: ${gpt ? guid() : `0x${hex(8).toLowerCase().replace(/^0/, '1')}`}`];
  if (gpt && rnd() < 0.3) lines.push(`table-length: ${[8, 16, 32][Math.floor(rnd() * 3)]}`);
  const count = 1 + Math.floor(rnd() * (gpt ? 5 : 4));
  let budget = diskMiB - 2;
  for (let i = 0; i < count; i++) {
    const last = i === count - 1;
    const sizeMiB = Math.max(1, Math.floor(rnd() * (budget / 2)));
    budget -= sizeMiB + 1;
    const fields = [];
    if (!(last && rnd() < 0.5)) fields.push(`size=${sizeMiB}M`);
    const types = gpt ? GPT_TYPES : DOS_TYPES;
    fields.push(`type=${types[Math.floor(rnd() * types.length)]}`);
    if (gpt) {
      fields.push(`uuid=${guid()}`);
      if (rnd() < 0.6) fields.push(`name="part ${i} ${rnd() < 0.3 ? 'données' : 'x'}"`);
    } else if (rnd() < 0.2) {
      fields.push('bootable');
    }
    lines.push(fields.join(', '));
    if (budget < 4) break;
  }
  return `${lines.join('\n')}\n`;
}

describe('random layouts: ptable write = sfdisk, and sfdisk reads back what ptable dumps', () => {
  it('40 random scripts (seed 4242)', () => {
    const rnd = prng(4242);
    let compared = 0;
    for (let i = 0; i < 40; i++) {
      const diskMiB = 16 + Math.floor(rnd() * 240);
      const script = randomScript(rnd, diskMiB);
      const ours = path.join(dir, `ours-${i}.img`);
      const theirs = path.join(dir, `theirs-${i}.img`);
      fs.writeFileSync(ours, '');
      fs.truncateSync(ours, diskMiB * MiB);
      fs.writeFileSync(theirs, '');
      fs.truncateSync(theirs, diskMiB * MiB);
      const s = runTool('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', theirs], { input: script });
      const p = ptable(['write', ours], { input: script });
      // Both must agree on whether the script is valid.
      expect(p.status === 0, `${script}\nptable: ${p.stderr}\nsfdisk: ${s.stderr}`).toBe(s.status === 0);
      if (s.status !== 0) continue;
      const a = fs.readFileSync(ours);
      const b = fs.readFileSync(theirs);
      expect(firstDifference(a, b), script).toBe(-1);
      const dump = ptable(['dump', ours]);
      expect(dump.status).toBe(0);
      expect(dump.stdout, script).toBe(runTool('sfdisk', ['-d', ours]).stdout);
      expect(runTool('sfdisk', ['-V', ours]).status, script).toBe(0);
      fs.rmSync(ours);
      fs.rmSync(theirs);
      compared++;
    }
    // Most random scripts are valid: the comparison above really ran.
    expect(compared).toBeGreaterThanOrEqual(30);
  }, 120_000);
});
