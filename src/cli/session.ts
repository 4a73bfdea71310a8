import type { Command } from 'commander';
import { setMaxListeners } from 'node:events';
import { readCiContext } from '../gitlab/ci-variables.js';
import { takeSecretEnv } from '../adapters/child-env.js';
import type { ContainerEngine } from '../adapters/container-engine.js';
import type { Reporter, RunContext } from '../context.js';
import { ExitCode, SkiffError, oneLine, type ExitCodeName } from '../errors.js';
import { exitNow, failureExitCode, setExitCode } from './exit-codes.js';
import { ParsedFlags, globalFlags, type GlobalFlags } from './flags.js';
import { LineReporter, LiveReporter, takesEscapes } from './reporter.js';

export interface Session {
  ctx: RunContext;
  json: boolean;
  close: () => void;
}

/** skiff's environment, secrets included; process.env keeps none of them (adapters/child-env.ts). */
let startEnv: NodeJS.ProcessEnv | undefined;

function openSession(global: GlobalFlags): Session {
  const json = global.output === 'json';
  const stderr = process.stderr;
  const env = (startEnv ??= takeSecretEnv(process.env));
  const ci = readCiContext(env);
  let reporter: Reporter;
  let close = () => {};
  // A live view on a terminal; plain lines in CI, in a file or pipe, and with NO_COLOR or TERM=dumb.
  if (!json && takesEscapes(stderr, env) && !ci.active) {
    const live = new LiveReporter(stderr, global.verbose);
    reporter = live;
    close = () => live.close();
  } else {
    reporter = new LineReporter(stderr, global.verbose, !json || Boolean(global.verbose), { gitlab: ci.gitlab });
  }
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // every request in flight listens: many, and none of them a leak
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) exitNow('interrupted');
    // After a SIGHUP the terminal is gone: nobody reads the line, and writing it could fail.
    if (sig !== 'SIGHUP') reporter.warn(`${sig}: stopping and cleaning up (press Ctrl-C again to quit at once)`);
    abort.abort(new Error(sig));
  };
  // A closed terminal (SIGHUP) and Ctrl-\ (SIGQUIT) stop skiff as Ctrl-C does: cleaned up (no plain
  // secret copy left behind), exit 130; their default would end the process on the spot.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const) process.on(sig, onSignal);
  let docker: Promise<ContainerEngine> | undefined;
  const ctx: RunContext = {
    cwd: global.dir ?? process.cwd(),
    env,
    ci,
    reporter,
    now: () => new Date(),
    signal: abort.signal,
    docker: () =>
      (docker ??= import('../adapters/docker-start.js').then((m) =>
        m.openDockerEngine(env, { wait: ci.active, signal: abort.signal, onWait: (message) => reporter.info(message) }),
      )),
    kube: (cluster) => import('../adapters/kube.js').then((m) => m.HttpKubeClient.connect({ ...cluster, env })),
  };
  return { ctx, json, close };
}

/**
 * Runs one command: the only place that turns its errors into exit codes.
 * `body` returns the name of its code when it is not success (diff --exit-code).
 */
export async function run(program: Command, body: (s: Session) => Promise<ExitCodeName | void>): Promise<void> {
  const session = openSession(globalFlags.read(ParsedFlags.of(program)));
  try {
    const code = await body(session);
    session.close();
    setExitCode(ExitCode[code ?? 'ok']);
  } catch (e) {
    session.close();
    reportFailure(e, session.json, session.ctx.signal.aborted);
  }
}

/** A failed command's last words (one line; in JSON mode also a document on stdout) and its exit code. */
export function reportFailure(e: unknown, json: boolean, interrupted: boolean): void {
  const err = e instanceof SkiffError ? e : undefined;
  const code = failureExitCode(e, interrupted);
  const message = err
    ? oneLine(err.message)
    : `internal error: ${(e as Error)?.stack ?? String(e)}\nThis is a bug in skiff; please report it with the command you ran.`;
  if (json && !err?.resultPrinted) {
    process.stdout.write(`${JSON.stringify({ error: { kind: err?.kind ?? 'internal', exitCode: code, message, detail: err?.detail } }, null, 2)}\n`);
  }
  process.stderr.write(`error: ${message}\n`);
  setExitCode(code);
}

export function printJson(value: unknown) {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
