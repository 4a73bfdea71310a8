import type { Command } from 'commander';
import { readCiContext } from '../gitlab/ci-variables.js';
import { takeSecretEnv } from '../adapters/child-env.js';
import type { ContainerEngine } from '../adapters/container-engine.js';
import type { Reporter, RunContext } from '../context.js';
import { ExitCode, SkiffError, oneLine } from '../errors.js';
import { LineReporter, LiveReporter } from './reporter.js';

export interface GlobalOptions {
  output: 'text' | 'json';
  verbose?: boolean;
  dir?: string;
}

export interface Session {
  ctx: RunContext;
  json: boolean;
  close: () => void;
}

/** skiff's environment, secrets included; process.env keeps none of them (adapters/child-env.ts). */
let startEnv: NodeJS.ProcessEnv | undefined;

function openSession(global: GlobalOptions): Session {
  const json = global.output === 'json';
  const stderr = process.stderr;
  const env = (startEnv ??= takeSecretEnv(process.env));
  const ci = readCiContext(env);
  let reporter: Reporter;
  let close = () => {};
  if (!json && stderr.isTTY && !ci.active) {
    const live = new LiveReporter(stderr, global.verbose);
    reporter = live;
    close = () => live.close();
  } else {
    reporter = new LineReporter(stderr, global.verbose, !json || Boolean(global.verbose), { gitlab: ci.gitlab });
  }
  const abort = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) process.exit(ExitCode.interrupted);
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
    docker: () => (docker ??= import('../adapters/docker.js').then((m) => new m.DockerEngine(env))),
    kube: (cluster) => import('../adapters/kube.js').then((m) => m.HttpKubeClient.connect(cluster)),
  };
  return { ctx, json, close };
}

/** Runs one command: the only place that turns errors into exit codes. */
export async function run(program: Command, body: (s: Session) => Promise<void>): Promise<void> {
  const session = openSession(program.opts<GlobalOptions>());
  try {
    await body(session);
    session.close();
    process.exitCode = process.exitCode ?? ExitCode.ok;
  } catch (e) {
    session.close();
    const err = e instanceof SkiffError ? e : undefined;
    const code = session.ctx.signal.aborted ? ExitCode.interrupted : (err?.exitCode ?? ExitCode.failed);
    const message = err
      ? oneLine(err.message)
      : `internal error: ${(e as Error)?.stack ?? String(e)}\nThis is a bug in skiff; please report it with the command you ran.`;
    if (session.json && !err?.resultPrinted) {
      process.stdout.write(`${JSON.stringify({ error: { kind: err?.kind ?? 'internal', exitCode: code, message, detail: err?.detail } }, null, 2)}\n`);
    }
    process.stderr.write(`error: ${message}\n`);
    process.exitCode = code;
  }
}

export function printJson(value: unknown) {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
