/**
 * Every failure skiff reports is a SkiffError: a kind, an exit code and a
 * one-line message that says what to change. Only src/cli/exit-codes.ts turns
 * them into process exit codes.
 */

interface ExitCodeRow {
  code: number;
  /** What the code tells the user; `skiff --help` prints it. */
  meaning: string;
  /** Set only by this flag, whose help says when; not in the table of `skiff --help`. */
  flag?: string;
}

/** Every exit code skiff sets: the errors' codes, Ctrl-C, `diff --exit-code`, and the help's table, all from here. */
export const EXIT_CODES = {
  ok: { code: 0, meaning: 'success' },
  /** The work itself failed: a build step, a test, a rollout. */
  failed: { code: 1, meaning: 'the work failed (build step, test, rollout)' },
  /** Bad input or configuration; nothing was touched. */
  badInput: { code: 2, meaning: 'bad input or configuration; nothing was touched' },
  /** Docker, a registry or a cluster could not be reached, or refused access. */
  infrastructure: { code: 3, meaning: 'Docker, registry or cluster unreachable, or access denied' },
  /** Interrupted (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT). */
  interrupted: { code: 130, meaning: 'interrupted' },
  /** The live objects differ from what a deploy would apply: 1, as `git diff --exit-code`. */
  changes: { code: 1, meaning: 'there are changes', flag: 'diff --exit-code' },
} as const satisfies Record<string, ExitCodeRow>;

export type ExitCodeName = keyof typeof EXIT_CODES;

/** The codes of EXIT_CODES by name, for errors and tests: `ExitCode.badInput` is 2. */
export const ExitCode = Object.fromEntries(Object.entries(EXIT_CODES).map(([name, row]) => [name, row.code])) as {
  readonly [N in ExitCodeName]: (typeof EXIT_CODES)[N]['code'];
};

export type ErrorKind = 'config' | 'input' | 'build' | 'test' | 'deploy' | 'infrastructure' | 'auth' | 'interrupted' | 'internal';

export class SkiffError extends Error {
  override readonly name: string = 'SkiffError';
  constructor(
    readonly kind: ErrorKind,
    readonly exitCode: number,
    message: string,
    options?: { cause?: unknown; detail?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.detail = options?.detail;
  }
  readonly detail: unknown;
  /** Set when the command already wrote its result to stdout (JSON mode), so the CLI adds no second document. */
  resultPrinted = false;
}

/** Bad skiff.yaml, template, flag or repository state. Exit 2, nothing touched. */
export class ConfigError extends SkiffError {
  override readonly name: string = 'ConfigError';
  constructor(message: string, options?: { cause?: unknown; detail?: unknown }) {
    super('config', ExitCode.badInput, message, options);
  }
}

/** There is no project here: not a Git repository, or no skiff.yaml. Exit 2; a few commands work without one. */
export class NoProjectError extends ConfigError {
  override readonly name = 'NoProjectError';
}

/** The work ran and failed (build step, test, rollout). Exit 1. */
export class WorkFailedError extends SkiffError {
  override readonly name = 'WorkFailedError';
  constructor(kind: 'build' | 'test' | 'deploy', message: string, options?: { cause?: unknown; detail?: unknown }) {
    super(kind, ExitCode.failed, message, options);
  }
}

/** Docker, registry or cluster unreachable, or access denied. Exit 3. */
export class InfrastructureError extends SkiffError {
  override readonly name = 'InfrastructureError';
  constructor(message: string, options?: { cause?: unknown; detail?: unknown; kind?: 'infrastructure' | 'auth' }) {
    super(options?.kind ?? 'infrastructure', ExitCode.infrastructure, message, options);
  }
}

export function isSkiffError(e: unknown): e is SkiffError {
  return e instanceof SkiffError;
}

/** A message safe to print: never the raw object, never more than one line. */
export function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}
