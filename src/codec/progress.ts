/**
 * Progress rendering, throttled: the copy reports every chunk, the screen is redrawn at most about
 * four times a second. The bar keeps v0.10's look: |====>----| 42.0% 12.345MB of 29.000MB.
 */
export interface ProgressSnapshot {
  doneBytes: number;
  totalBytes: number | null;
}

const BAR_WIDTH = 40;
const MIN_REDRAW_MS = 250;
const MiB = 1024 * 1024;

export function formatProgressBar(p: ProgressSnapshot): string {
  if (p.totalBytes === null) return `${(p.doneBytes / MiB).toFixed(3)}MB  `;
  const percent = p.totalBytes > 0 ? Math.round((p.doneBytes * 1000) / p.totalBytes) / 10 : 100;
  const filled = Math.round((BAR_WIDTH * percent) / 100);
  let bar = '';
  for (let i = 0; i < BAR_WIDTH; i++) bar += i < filled ? '=' : i === filled ? '>' : '-';
  return `|${bar}| ${percent.toFixed(1)}% ${(p.doneBytes / MiB).toFixed(3)}MB of ${(p.totalBytes / MiB).toFixed(3)}MB  `;
}

export class ThrottledProgress {
  private lastDraw = 0;
  private drawn = false;

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly now: () => number = () => performance.now(),
  ) {}

  update(p: ProgressSnapshot): void {
    const t = this.now();
    if (this.drawn && t - this.lastDraw < MIN_REDRAW_MS) return;
    this.lastDraw = t;
    this.drawn = true;
    this.out.write(`${formatProgressBar(p)}\r`);
  }

  finish(p: ProgressSnapshot): void {
    this.out.write(`${formatProgressBar(p)}\n`);
  }
}
