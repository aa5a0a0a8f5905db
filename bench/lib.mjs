// Whole-process benchmark helpers: run commands in alternating order, report medians and ratios.
import { spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const WORK = process.env.BENCH_WORK ?? path.join(ROOT, 'bench/work');
export const SPARSECOPY = path.join(ROOT, 'dist/bin/sparsecopy.mjs');

export function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

export function sh(script, options = {}) {
  const r = spawnSync('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  if (r.status !== 0) throw new Error(`failed (${r.status}): ${script}\n${r.stderr}`);
  return r.stdout.toString();
}

/** Runs `script` under /usr/bin/time; returns wall seconds (hrtime) and peak RSS in MB. */
export function timed(script) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', 'bash', '-c', script], { stdio: ['ignore', 'ignore', 'pipe'] });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const err = r.stderr.toString().trim().split('\n');
  if (r.status !== 0) throw new Error(`failed (${r.status}): ${script}\n${err.join('\n')}`);
  const rssKb = Number(err[err.length - 1]);
  return { seconds, rssMb: rssKb / 1024 };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * contenders: [{ name, prepare?: () => void (untimed), run: string (bash) }]. Runs `rounds`
 * rounds; each round runs every contender once, in an order rotated per round, so page-cache and
 * writeback effects fall on all of them alike.
 */
export function compare(title, contenders, rounds = 5) {
  const results = new Map(contenders.map((c) => [c.name, { secs: [], rss: [] }]));
  for (let round = 0; round < rounds; round++) {
    const order = contenders.map((_, i) => contenders[(i + round) % contenders.length]);
    for (const c of order) {
      c.prepare?.();
      sh('sync');
      const { seconds, rssMb } = timed(c.run);
      results.get(c.name).secs.push(seconds);
      results.get(c.name).rss.push(rssMb);
    }
  }
  const base = median(results.get(contenders[0].name).secs);
  const rows = contenders.map((c) => {
    const r = results.get(c.name);
    const m = median(r.secs);
    return { name: c.name, median: m, min: Math.min(...r.secs), max: Math.max(...r.secs), rssMb: Math.max(...r.rss), ratio: m / base };
  });
  return { title, rounds, rows };
}

export function formatTable(result) {
  const lines = [`### ${result.title}`, '', `${result.rounds} rounds, alternating order; ratio = median / median of the first row.`, '',
    '| command | median s | min s | max s | ratio | peak RSS MB |', '|---|---|---|---|---|---|'];
  for (const r of result.rows) {
    lines.push(`| ${r.name.replaceAll('|', '\\|')} | ${r.median.toFixed(3)} | ${r.min.toFixed(3)} | ${r.max.toFixed(3)} | ${r.ratio.toFixed(2)} | ${r.rssMb.toFixed(0)} |`);
  }
  return lines.join('\n');
}

export function ensureDir(d) {
  fs.mkdirSync(d, { recursive: true });
  return d;
}

export function exec(cmd, args) {
  return execFileSync(cmd, args).toString();
}
