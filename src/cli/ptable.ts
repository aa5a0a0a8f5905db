/**
 * ptable: read, check, dump and write MBR and GPT partition tables, compatible with sfdisk.
 * Parses options and prints; the formats live in src/partition, the sector I/O in src/io/disk.ts.
 * The subcommands are grouped by what they do: reading here, `write` in ptable-write.ts, the
 * in-place edits in ptable-edit.ts, the whole-table operations in ptable-gpt.ts. sfdisk's own
 * command line is accepted too (sfdisk-argv.ts).
 */
import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { ToolError } from '../errors.js';
import { checkTable } from '../partition/read.js';
import { formatSfdiskDump } from '../partition/sfdisk-dump.js';
import { formatSfdiskJson } from '../partition/sfdisk-json.js';
import { formatShow } from '../partition/show.js';
import { type ChangeOptions, type GlobalOptions, addChangeOptions, formatProblem, loadTable, setRunningChangeOptions, withDisk } from './ptable-common.js';
import { registerEditCommands } from './ptable-edit.js';
import { registerGptCommands } from './ptable-gpt.js';
import { registerWriteCommand } from './ptable-write.js';
import { runMain } from './run.js';
import { sfdiskArgv } from './sfdisk-argv.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

const HELP_TAIL = `
DISK is an image file or a block device (a FIFO or terminal is refused). A script with no label
and no partition (empty, blank or comment lines) writes nothing, as sfdisk.

sfdisk's command line works too: \`ptable --delete DISK 2\`, \`ptable -N 3 DISK < LINE\`,
\`ptable -d DISK\`, \`ptable -V DISK\`, \`ptable --relocate gpt-bak-std DISK\` and so on (as in
sfdisk, \`ptable DISK N < LINE\` counts N from 0: prefer -N).

Exit codes: 0 ok, 1 usage, 2 cannot open the disk, 3 no partition table, 4 check found errors,
5 reading, writing or extending the disk failed (or it is too small), 6 invalid script (the
message names the line), 7 no such partition, 8 a change refused (it would overlap or not fit,
or the table on the disk is damaged; nothing written), 9 a table backup file cannot be written
or read, is damaged or does not fit the disk (nothing written), 130/143 interrupted.
`;

function readCommands(program: Command, globals: () => GlobalOptions): void {
  program
    .command('show')
    .description('a readable table: number, start, end, sectors, size, type, name, bootable, PARTUUID')
    .argument('<DISK>')
    .action((path: string) => {
      withDisk(path, globals(), (disk) => process.stdout.write(formatShow(loadTable(disk), path)));
    });

  program
    .command('dump')
    .description('the text `sfdisk -d DISK` prints, or with --json what `sfdisk -J DISK` prints')
    .argument('<DISK>')
    .option('--json', 'sfdisk -J format')
    .action((path: string, opts: { json?: boolean }) =>
      withDisk(path, globals(), (disk) => {
        const table = loadTable(disk);
        process.stdout.write(opts.json ? formatSfdiskJson(table, path) : formatSfdiskDump(table, path));
      }),
    );

  program
    .command('check')
    .description('list every problem of the table with its LBA; exit 4 when there are errors')
    .argument('<DISK>')
    .action((path: string) =>
      withDisk(path, globals(), (disk) => {
        const { label, problems } = checkTable(disk.read, disk.sectorSize, disk.sectors);
        for (const p of problems) process.stdout.write(`${formatProblem(path, p)}\n`);
        const errors = problems.filter((p) => p.severity === 'error').length;
        if (errors > 0) throw new ToolError('CHECK_FAILED', `${path}: ${errors} error(s) in the ${label ?? 'partition'} table`);
        process.stdout.write(`${path}: ${label} table OK${problems.length ? ` (${problems.length} warning(s))` : ''}\n`);
      }),
    );
}

/** The commands that change a table in place: they take sfdisk's --no-reread, -q, -f, -b and -O. */
const CHANGE_COMMANDS: ReadonlySet<string> = new Set([
  'grow',
  'delete',
  'part-type',
  'part-label',
  'part-uuid',
  'part-attrs',
  'disk-id',
  'activate',
  'reorder',
  'relocate',
  'zap',
  'randomize-guids',
  'convert',
  'restore-pt-sectors',
  'restore',
]);

function buildCommand(): Command {
  const program = new Command('ptable')
    .description('Read, check, dump and write MBR and GPT partition tables (sfdisk-compatible).')
    .option('--sector-size <BYTES>', 'sector size of an image file: 512 or 4096 (default: detected, else 512)')
    .option('--debug', 'show stack traces of errors')
    // -V is sfdisk's --verify (see sfdisk-argv.ts); the version is -v, as sfdisk's.
    .version(version, '-v, --version')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .addHelpText('after', HELP_TAIL);
  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  readCommands(program, globals);
  registerWriteCommand(program, globals);
  registerEditCommands(program, globals);
  registerGptCommands(program, globals);
  for (const command of program.commands) if (CHANGE_COMMANDS.has(command.name())) addChangeOptions(command);
  program.hook('preAction', (_program, action) => setRunningChangeOptions(action.opts<ChangeOptions>()));
  return program;
}

async function main(argv: string[]): Promise<number> {
  const command = buildCommand();
  const subcommands = new Set(command.commands.map((c) => c.name()));
  try {
    await command.parseAsync(['node', 'ptable', ...sfdiskArgv(argv.slice(2), subcommands)]);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 1;
    throw err;
  }
  return 0;
}

await runMain('ptable', () => main(process.argv));
