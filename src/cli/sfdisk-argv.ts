/**
 * sfdisk's command line on ptable's subcommands, so that scripts written for sfdisk run unchanged:
 * `ptable --delete DISK 2` is `ptable delete DISK 2`, `ptable -N 3 DISK < LINE` and
 * `ptable DISK 2 < LINE` (sfdisk counts this one from 0) are `ptable write -N 3 DISK`, `ptable --relocate gpt-bak-std DISK` is
 * `ptable relocate --mode gpt-bak-std DISK`. Pure: argv in, argv out; a command line that already
 * names a subcommand is returned as it is.
 */

/** sfdisk's action options and the subcommand each one is. */
const ACTIONS: Readonly<Record<string, string>> = {
  '-A': 'activate',
  '--activate': 'activate',
  '-d': 'dump',
  '--dump': 'dump',
  '-J': 'dump',
  '--json': 'dump',
  '-l': 'show',
  '--list': 'show',
  '-r': 'reorder',
  '--reorder': 'reorder',
  '-V': 'check',
  '--verify': 'check',
  '--delete': 'delete',
  '--part-type': 'part-type',
  '--part-label': 'part-label',
  '--part-uuid': 'part-uuid',
  '--part-attrs': 'part-attrs',
  '--disk-id': 'disk-id',
  '--relocate': 'relocate',
  '--backup-pt-sectors': 'backup-pt-sectors',
};

/** Options whose value is the next word (when not written as --option=value). */
const TAKES_VALUE: ReadonlySet<string> = new Set([
  '--sector-size',
  '--size',
  '-N',
  '--partno',
  '-w',
  '--wipe',
  '-W',
  '--wipe-partitions',
  '-O',
  '--backup-file',
  '-X',
  '--label',
  '-u',
  '--unit',
  '-o',
  '--output',
  '--move-data-log',
]);

/**
 * What sfdisk accepts with any command but only a change can use: dropped before the commands
 * that only read (`sfdisk -q --no-reread --dump DISK` is `ptable dump DISK`).
 */
const CHANGE_ONLY: ReadonlySet<string> = new Set(['--no-reread', '--no-tell-kernel', '-q', '--quiet', '-f', '--force', '--lock', '--color']);
const READ_ONLY_ACTIONS: ReadonlySet<string> = new Set(['dump', 'show', 'check']);

/** Options of the program itself, which stay before the subcommand. */
const PROGRAM_OPTIONS: ReadonlySet<string> = new Set(['--sector-size', '--debug', '-h', '--help', '-v', '--version']);

/**
 * sfdisk's --move-data takes its log file only as `--move-data=LOGFILE`: a bare --move-data must
 * not take the next word (the disk). commander cannot say "a value only after =", so the value
 * travels in an option of its own.
 */
function splitMoveData(args: readonly string[]): string[] {
  return args.flatMap((a) => (a.startsWith('--move-data=') ? ['--move-data', '--move-data-log', a.slice('--move-data='.length)] : [a]));
}

/** `sfdisk DISK N`'s N as -N's number (one more); anything else is left for -N to refuse. */
function positionalPartno(word: string): string {
  return /^\d+$/.test(word) ? String(Number(word) + 1) : word;
}

export function sfdiskArgv(original: readonly string[], subcommands: ReadonlySet<string>): string[] {
  const args = splitMoveData(original);
  const firstWord = args.find((a, i) => !a.startsWith('-') && !(i > 0 && TAKES_VALUE.has(args[i - 1] ?? '')));
  if (firstWord === undefined || subcommands.has(firstWord)) return [...args];
  const programOptions: string[] = [];
  const options: string[] = [];
  const words: string[] = [];
  let action: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const [name] = arg.split('=', 1) as [string];
    if (arg === '--') {
      words.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      words.push(arg);
      continue;
    }
    const mapped = ACTIONS[name];
    if (mapped !== undefined && action === undefined) {
      action = mapped;
      if (name === '-J' || name === '--json') options.push('--json');
      // --relocate OPER: the operation is the option's value.
      if (name === '--relocate') options.push('--mode', ...(arg.includes('=') ? [arg.slice(name.length + 1)] : [args[++i] ?? '']));
      continue;
    }
    const target = PROGRAM_OPTIONS.has(name) ? programOptions : options;
    target.push(arg);
    if (TAKES_VALUE.has(arg) && i + 1 < args.length) target.push(args[++i] ?? '');
  }
  if (action === undefined) {
    // `sfdisk DISK N`: sfdisk 2.38 (and util-linux since) reads this N from 0 where -N counts from
    // 1, so `sfdisk DISK 2` edits partition 3; scripts written against it expect that.
    if (words.length === 2) return [...programOptions, 'write', ...options, '-N', positionalPartno(words[1] ?? ''), words[0] ?? ''];
    return [...programOptions, 'write', ...options, ...words];
  }
  const kept = READ_ONLY_ACTIONS.has(action) ? options.filter((o) => !CHANGE_ONLY.has(o.split('=', 1)[0] ?? o)) : options;
  return [...programOptions, action, ...kept, ...words];
}
