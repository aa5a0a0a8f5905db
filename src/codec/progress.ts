/**
 * Progress rendering, throttled: the copy reports every chunk, the screen is redrawn at most about
 * four times a second. On a terminal: v0.10's bar plus rate and ETA; for programs: one JSON object
 * per line.
 */
export interface ProgressSnapshot {
  /** Input bytes done (compressed bytes for a gzip source). */
  doneBytes: number;
  totalBytes: number | null;
  /** Uncompressed bytes produced. */
  outputBytes?: number;
}

const BAR_WIDTH = 40;
const MIN_REDRAW_MS = 250;
const MiB = 1024 * 1024;

export interface RateEstimate {
  /** Input bytes per second since the start. */
  bytesPerSecond: number;
  /** Seconds left at that rate, when the total is known. */
  etaSeconds: number | null;
}

export function estimateRate(p: ProgressSnapshot, elapsedSeconds: number): RateEstimate {
  const bytesPerSecond = elapsedSeconds > 0 ? p.doneBytes / elapsedSeconds : 0;
  const etaSeconds = p.totalBytes !== null && bytesPerSecond > 0 ? Math.max(0, (p.totalBytes - p.doneBytes) / bytesPerSecond) : null;
  return { bytesPerSecond, etaSeconds };
}

function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

export function formatProgressBar(p: ProgressSnapshot, rate?: RateEstimate): string {
  const speed = rate ? ` ${(rate.bytesPerSecond / MiB).toFixed(1)}MB/s` : '';
  if (p.totalBytes === null) return `${(p.doneBytes / MiB).toFixed(3)}MB${speed}  `;
  const percent = p.totalBytes > 0 ? Math.round((p.doneBytes * 1000) / p.totalBytes) / 10 : 100;
  const filled = Math.round((BAR_WIDTH * Math.min(percent, 100)) / 100);
  let bar = '';
  for (let i = 0; i < BAR_WIDTH; i++) bar += i < filled ? '=' : i === filled ? '>' : '-';
  const eta = rate?.etaSeconds != null ? ` ETA ${formatDuration(rate.etaSeconds)}` : '';
  return `|${bar}| ${percent.toFixed(1)}% ${(p.doneBytes / MiB).toFixed(3)}MB of ${(p.totalBytes / MiB).toFixed(3)}MB${speed}${eta}  `;
}

export function formatProgressJson(p: ProgressSnapshot, rate: RateEstimate, elapsedSeconds: number, done = false): string {
  return JSON.stringify({
    done: p.doneBytes,
    total: p.totalBytes,
    output: p.outputBytes ?? p.doneBytes,
    bytesPerSecond: Math.round(rate.bytesPerSecond),
    etaSeconds: rate.etaSeconds === null ? null : Math.round(rate.etaSeconds * 10) / 10,
    elapsedSeconds: Math.round(elapsedSeconds * 1000) / 1000,
    finished: done,
  });
}

export type ProgressFormat = 'bar' | 'json';

export class ThrottledProgress {
  private lastDraw = -Infinity;
  private readonly started: number;

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly format: ProgressFormat = 'bar',
    private readonly now: () => number = () => performance.now(),
  ) {
    this.started = now();
  }

  private elapsed(): number {
    return (this.now() - this.started) / 1000;
  }

  update(p: ProgressSnapshot): void {
    const t = this.now();
    if (t - this.lastDraw < MIN_REDRAW_MS) return;
    this.lastDraw = t;
    this.draw(p, false);
  }

  finish(p: ProgressSnapshot): void {
    this.draw(p, true);
  }

  private draw(p: ProgressSnapshot, done: boolean): void {
    const elapsed = this.elapsed();
    const rate = estimateRate(p, elapsed);
    if (this.format === 'json') this.out.write(`${formatProgressJson(p, rate, elapsed, done)}\n`);
    else this.out.write(`${formatProgressBar(p, rate)}${done ? '\n' : '\r'}`);
  }
}
