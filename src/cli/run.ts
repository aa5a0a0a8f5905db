/**
 * The only place that exits: runs a command's main, prints a ToolError as one line and exits
 * with its code; anything else is a bug and shows its stack.
 */
import { ToolError } from '../errors.js';

export async function runMain(main: () => Promise<number>): Promise<void> {
  let code: number;
  try {
    code = await main();
  } catch (err) {
    if (err instanceof ToolError) {
      process.stderr.write(`${err.message}\n`);
      if (process.argv.includes('--debug') && err.stack) process.stderr.write(`${err.stack}\n`);
      code = err.exitCode;
    } else {
      process.stderr.write(`${err instanceof Error && err.stack ? err.stack : String(err)}\n`);
      code = 70;
    }
  }
  process.exitCode = code;
}
