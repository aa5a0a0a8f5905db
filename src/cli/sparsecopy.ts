/**
 * sparsecopy: command-line compatible with sparsecopy v0.10. Parses options into typed library
 * options and prints; the copy itself is src/sparsecopy/copy.ts.
 */
import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { ToolError } from '../errors.js';
import { parseSize } from '../size.js';
import { type CopySummary, type SparseCopyOptions, sparseCopy } from '../sparsecopy/copy.js';
import { ThrottledProgress } from '../codec/progress.js';
import { runMain } from './run.js';
import { runExitCleanups } from '../io/exit-cleanup.js';

const SIGNAL_GRACE_MS = 500;

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

const HELP_TAIL = `
SOURCE can be "-" for stdin; SOURCE or DEST can be block devices, DEST can be "-" for stdout.
To make a sparse file use /dev/null as SOURCE with -f (e.g. sparsecopy -f2G /dev/null myfs).
SIZE and POS are in blocks by default, or with a suffix B K M G T P E (powers of 1024;
note -b 1024 means 1024 blocks of 512 bytes: use 1024B for bytes).

Exit codes: 0 ok, 1 usage or bad size, 2 cannot open source, 3 cannot open destination,
4 seek failed or --seek past the device end, 6/7 destination check read failed, 8 sparse skip
failed, 9 write failed, 10 truncate failed, 11 --check found a non-zero first block, 12 more
data than --max with -e, 13 source and destination are the same, 14 destination device mounted
or in use (see --force), 15 source does not fit on the device, 16 reading the source failed,
130/143 interrupted (temporary output removed).
`;

interface RawOptions {
  overlay?: boolean;
  nocheck?: boolean;
  quiet?: boolean;
  max?: string;
  maxwrite?: string;
  errorremainder?: boolean;
  blocksize?: string;
  seek?: string;
  finalsize?: string;
  check?: boolean;
  progress?: boolean;
  syncevery?: string;
  json?: boolean;
  force?: boolean;
  debug?: boolean;
}

function buildCommand(): Command {
  return new Command('sparsecopy')
    .usage('[OPTIONS] SOURCE DEST')
    .description('Copy SOURCE to DEST, making DEST sparse on the way (all-zero blocks become holes).')
    .argument('<SOURCE>')
    .argument('<DEST>')
    .option('-o, --overlay', 'Overlay existing file DEST (rather than truncating)')
    .option('-n, --nocheck', 'Skip blank check')
    .option('-q, --quiet', 'Quiet')
    .option('-m, --max <SIZE>', 'Copy SIZE bytes maximum from SOURCE')
    .option('--maxwrite <SIZE>', 'same as --max (v0.09 spelling)')
    .option('-e, --errorremainder', 'Error if there is more to write beyond --max value')
    .option('-b, --blocksize <SIZE>', 'Use SIZE blocksize in bytes (default 512)')
    .option('-s, --seek <POS>', 'Start writing SOURCE at position POS in DEST')
    .option('-f, --finalsize <SIZE>', 'Set size of DEST to SIZE when done (no effect on block devices)')
    .option('-c, --check', 'Check the first block in the destination is zero, else abort')
    .option('-p, --progress', 'Display progress indicator on stderr')
    .option('-y, --syncevery <SIZE>', 'Issue an fdatasync() every SIZE bytes')
    .option('--json', 'Print a machine-readable summary (JSON) on stdout')
    .option('--force', 'Write to a block device even if it is mounted or in use')
    .option('--debug', 'Show stack traces of errors')
    .version(version, '-V, --version')
    .helpOption('-h, --help', 'Display usage')
    .addHelpText('after', HELP_TAIL)
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
}

/** Sizes are parsed after -b, because a bare number is a count of blocks (v0.10). */
export function toCopyOptions(source: string, destination: string, raw: RawOptions): SparseCopyOptions {
  const blockSize = raw.blocksize === undefined ? 512 : parseSize(raw.blocksize, 512, 'block size');
  if (blockSize <= 0) throw new ToolError('USAGE', `sparsecopy: bad block size ${blockSize}`);
  const size = (text: string | undefined, what: string) => (text === undefined ? undefined : parseSize(text, blockSize, what));
  return {
    source,
    destination,
    overlay: raw.overlay ?? false,
    noCheck: raw.nocheck ?? false,
    maxBytes: size(raw.max ?? raw.maxwrite, 'max size'),
    errorRemainder: raw.errorremainder ?? false,
    blockSize,
    seekBytes: size(raw.seek, 'seek position') ?? 0,
    finalSize: size(raw.finalsize, 'final size'),
    checkFirstBlock: raw.check ?? false,
    syncEveryBytes: size(raw.syncevery, 'sync interval') ?? 0,
    force: raw.force ?? false,
  };
}

export function formatSummaryLine(s: CopySummary): string {
  return `sparsecopy: total bytes = ${s.total} (real = ${s.real}, sparse = ${s.sparse}), nonzerodest = ${s.nonzerodest}`;
}

async function main(argv: string[]): Promise<number> {
  const command = buildCommand();
  try {
    command.parse(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with 0; every parse error is a usage error (1).
      return err.exitCode === 0 ? 0 : 1;
    }
    throw err;
  }
  const raw = command.opts<RawOptions>();
  const [source, destination] = command.args as [string, string];
  const options = toCopyOptions(source, destination, raw);

  const quiet = raw.quiet ?? false;
  // v0.10 drew progress only on a terminal; a bar in a log file is noise.
  const progress = raw.progress && process.stderr.isTTY ? new ThrottledProgress(process.stderr) : null;
  let last = { doneBytes: 0, totalBytes: null as number | null };
  options.onProgress = (p) => {
    last = p;
    progress?.update(p);
  };
  options.onWarning = (message) => {
    if (!quiet) process.stderr.write(`${message}\n`);
  };

  const controller = new AbortController();
  options.signal = controller.signal;
  const onSignal = (signal: NodeJS.Signals) => {
    const exitCode = signal === 'SIGTERM' ? 143 : 130;
    const error = new ToolError('INTERRUPTED', `sparsecopy: interrupted by ${signal}; ${destination}: left as it was`, { exitCode });
    controller.abort(error);
    // The copy notices the abort between chunks; a read blocked on an idle pipe never returns, so
    // after a grace period the temporary output is removed here and the process ends.
    setTimeout(() => {
      runExitCleanups();
      process.stderr.write(`${error.message}\n`);
      process.exit(exitCode);
    }, SIGNAL_GRACE_MS).unref();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const summary = await sparseCopy(options);
  progress?.finish(last);
  if (raw.json) {
    const json = JSON.stringify({ source, destination, ...summary });
    (destination === '-' ? process.stderr : process.stdout).write(`${json}\n`);
  }
  if (!quiet) process.stderr.write(`${formatSummaryLine(summary)}\n`);
  return 0;
}

await runMain(() => main(process.argv));
