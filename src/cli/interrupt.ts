/**
 * SIGINT/SIGTERM for the commands that write a destination (sparsecopy, fsmaker).
 *
 * The first signal aborts the run (the AbortSignal handed to the library): every wait it can be
 * in gives up (an idle pipe, a FIFO's open, a pipe nobody reads, the writer thread, a child
 * process), it removes its temporary output and says what became of the destination, and the
 * process ends with 130/143 at once, without joining libuv's pool threads, one of which may be
 * blocked in a read of an idle pipe for ever (exitNow). A wait that cannot give up gets GRACE_MS;
 * then, or at a second signal, the handler removes what is registered and ends the process itself.
 *
 * Once the destination is committed (renamed into place, or the device fully written), a signal is
 * too late to undo anything and is ignored: the run reports its success.
 */
import { ToolError } from '../errors.js';
import { runExitCleanups } from '../io/exit-cleanup.js';
import { exitNow } from '../io/ffi.js';
import { type ProgramName, programLine } from './run.js';

const GRACE_MS = 500;

const exitCodeOf = (signal: NodeJS.Signals): number => (signal === 'SIGTERM' ? 143 : 130);

export interface Interruption {
  /** Aborts at the first signal; its reason is an INTERRUPTED ToolError with the exit code. */
  readonly signal: AbortSignal;
  /** Call at the commit, synchronously: from then on a signal is ignored. */
  committed(): void;
  /** What the forced exit's message says of the destination ("out.img: left as it was"). */
  describe(destinationOutcome: string): void;
  /** After the command's main: a run that a signal aborted ends now, with its code. */
  finish(): void;
}

export function handleInterrupts(program: ProgramName): Interruption {
  const controller = new AbortController();
  let received: NodeJS.Signals | null = null;
  let isCommitted = false;
  let outcome = 'any temporary output removed';
  const forceExit = (): void => {
    const signal = received ?? 'SIGTERM';
    runExitCleanups();
    process.stderr.write(programLine(program, `interrupted by ${signal}; ${outcome}`));
    exitNow(exitCodeOf(signal));
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (isCommitted) return;
    if (received) return forceExit(); // a second signal: no more waiting
    received = signal;
    controller.abort(new ToolError('INTERRUPTED', `interrupted by ${signal}`, { exitCode: exitCodeOf(signal) }));
    setTimeout(forceExit, GRACE_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    committed: () => {
      isCommitted = true;
    },
    describe: (text) => {
      outcome = text;
    },
    finish: () => {
      if (received && !isCommitted) exitNow(typeof process.exitCode === 'number' ? process.exitCode : exitCodeOf(received));
    },
  };
}
