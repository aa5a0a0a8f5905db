/**
 * The only place that exits: runs a command's main, prints a ToolError as one line prefixed with
 * the command's own name (library messages never name a program: the same error reads
 * "ptable: ..." from ptable and "sparsecopy: ..." from sparsecopy) and exits with its code;
 * anything else is a bug and shows its stack.
 */
import { ToolError } from '../errors.js';

export type ProgramName = 'sparsecopy' | 'ptable' | 'fsmaker';

/** A message line as the command prints it. */
export const programLine = (program: ProgramName, message: string): string => `${program}: ${message}\n`;

/** Exit status of a process killed by SIGPIPE, as a shell reports it (`yes | head` gives 141 for yes). */
export const BROKEN_PIPE_EXIT = 141;

export async function runMain(program: ProgramName, main: () => Promise<number>): Promise<void> {
  // A reader that stops early (`ptable dump DISK | head -1`, `sparsecopy --help | head`) closes
  // stdout: a C tool dies of SIGPIPE there, which Node ignores, leaving an unhandled 'error' with
  // a stack trace. End as the C tool would; temporary outputs still go ('exit' cleanups).
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(BROKEN_PIPE_EXIT);
    throw err;
  });
  let code: number;
  try {
    code = await main();
  } catch (err) {
    if (err instanceof ToolError) {
      process.stderr.write(programLine(program, err.message));
      if (process.argv.includes('--debug') && err.stack) process.stderr.write(`${err.stack}\n`);
      code = err.exitCode;
    } else {
      process.stderr.write(`${err instanceof Error && err.stack ? err.stack : String(err)}\n`);
      code = 70;
    }
  }
  process.exitCode = code;
}
