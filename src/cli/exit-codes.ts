import type { CommanderError } from 'commander';
import { EXIT_CODES, ExitCode, SkiffError, type ExitCodeName } from '../errors.js';

/**
 * The only code that sets skiff's exit status, every value from the table
 * EXIT_CODES in src/errors.ts: a command's end (run in session.ts), a second
 * Ctrl-C, commander's usage errors, and the help's table.
 */

/** The table of `skiff --help`: the codes any command may end with (a flag's own code is in that flag's help). */
export function exitCodesHelp(): string {
  const rows = Object.values(EXIT_CODES).filter((row) => !('flag' in row));
  return ['Exit codes:', ...rows.map((row) => `  ${String(row.code).padEnd(2)} ${row.meaning}`)].join('\n');
}

/** The help of a flag that sets its own code, e.g. "exit 1 when there are changes". */
export function flagExitHelp(name: ExitCodeName): string {
  return `exit ${EXIT_CODES[name].code} when ${EXIT_CODES[name].meaning}`;
}

/** A failed command's code: its error's, 1 for a bug, and 130 once interrupted, whatever the abort then broke. */
export function failureExitCode(error: unknown, interrupted: boolean): number {
  if (interrupted) return ExitCode.interrupted;
  return error instanceof SkiffError ? error.exitCode : ExitCode.failed;
}

/** The code skiff exits with once its output is written (Node exits when nothing is left to do). */
export function setExitCode(code: number): void {
  process.exitCode = code;
}

/**
 * Ends the process once the command is done and its output written. Node would otherwise wait
 * for idle keep-alive connections its fetch keeps to a registry (about 140 ms after the last
 * response): a no-op build spent a fifth of its time there. Everything a command starts is
 * awaited before it returns, so nothing is cut short.
 */
export async function exitWhenWritten(): Promise<never> {
  await Promise.all([process.stdout, process.stderr].map((stream) => new Promise<void>((resolve) => stream.write('', () => resolve()))));
  process.exit(process.exitCode ?? EXIT_CODES.ok.code);
}

/** Exits now, for what must not wait for the work to wind down: a second Ctrl-C. */
export function exitNow(name: ExitCodeName): never {
  process.exit(EXIT_CODES[name].code);
}

/** commander's --help and --version end with 0; its usage errors (unknown flag, missing argument) are bad input. */
export function exitAfterCommander(err: CommanderError): never {
  const shown = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help';
  exitNow(shown ? 'ok' : 'badInput');
}
