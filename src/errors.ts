/**
 * Every failure skiff reports is a SkiffError: a kind, an exit code and a
 * one-line message that says what to change. Only src/cli turns them into
 * process exit codes.
 */
export const ExitCode = {
  ok: 0,
  /** The work itself failed: a build step, a test, a rollout. */
  failed: 1,
  /** Bad input or configuration; nothing was touched. */
  badInput: 2,
  /** Docker, a registry or a cluster could not be reached, or refused access. */
  infrastructure: 3,
  /** Interrupted (Ctrl-C / SIGTERM). */
  interrupted: 130,
} as const;

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
