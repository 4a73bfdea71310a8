import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

/**
 * The helm binary the test bed built from helm.sh/helm/v4 (test/helm/build.sh):
 * SKIFF_HELM as scripts/test exports it, else the cached build of the version
 * test/helm/go.mod requires.
 */
export function helmBinary(): string {
  if (process.env.SKIFF_HELM) return process.env.SKIFF_HELM;
  const mod = readFileSync(new URL('../helm/go.mod', import.meta.url), 'utf8');
  const version = /helm\.sh\/helm\/v4 (v\S+)/.exec(mod)?.[1];
  const path = join(process.env.SKIFF_CLUSTER_CACHE ?? join(homedir(), '.cache', 'skiff'), `helm-${version}`, 'helm');
  if (!existsSync(path)) throw new Error(`no helm at ${path}: run test/helm/build.sh (scripts/test does)`);
  return path;
}

/** Runs helm with a private home (nothing of the machine's Helm set-up read or written); returns stdout. */
export function helm(args: string[], home: string, cwd?: string): string {
  return execFileSync(helmBinary(), args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data') },
  });
}
