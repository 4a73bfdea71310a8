import type { DockerEngine } from './adapters/docker.js';

/**
 * Where actions report progress. Actions never print: the CLI picks an
 * implementation (a CI log, a live terminal view, or JSON mode's stderr).
 */
export interface Reporter {
  /** A plain message for the user. */
  info(message: string): void;
  warn(message: string): void;
  /** A line of output from a build, test or container, labelled with its source. */
  log(source: string, line: string): void;
  /** A unit of work (image, test, object) changed state. */
  status(subject: string, state: string, detail?: string): void;
  /** Shown only with --verbose. */
  debug(message: string): void;
}

/**
 * Everything an action depends on, passed in once (Helm's Configuration):
 * the working directory, environment, reporter, clock, abort signal and the
 * lazily created clients of the outside world.
 */
export interface RunContext {
  cwd: string;
  env: NodeJS.ProcessEnv;
  reporter: Reporter;
  now: () => Date;
  signal: AbortSignal;
  docker: () => Promise<DockerEngine>;
}

export function isCI(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.CI && env.CI !== 'false' && env.CI !== '0') || Boolean(env.GITLAB_CI);
}

export const silentReporter: Reporter = {
  info() {},
  warn() {},
  log() {},
  status() {},
  debug() {},
};
