// Helpers for tests against the second, kwok-simulated cluster
// (`scripts/cluster up --sim`): context `skiff-sim` in .skiff/kubeconfig
// beside the real cluster's `skiff`, and alone in .skiff/kubeconfig-sim.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { kubeconfigPath, kubectlPath, repoRoot, waitFor } from './cluster.js';

export const SIM_CONTEXT = 'skiff-sim';
export const SIM_SERVER = 'https://127.0.0.1:7443';

/** The sim cluster's own kubeconfig (override: SKIFF_SIM_KUBECONFIG). */
export function simKubeconfigPath(): string {
  return process.env.SKIFF_SIM_KUBECONFIG ?? path.join(repoRoot, '.skiff', 'kubeconfig-sim');
}

/** Where `scripts/cluster` keeps the sim's pid files. */
export function simPidFile(component: string): string {
  return path.join(process.env.SKIFF_STATE ?? '/var/lib/skiff-dev', 'cluster-sim', 'run', `${component}.pid`);
}

/** kubectl against the sim cluster. */
export async function simKubectl(args: string[], opts: { input?: string; allowFailure?: boolean; timeoutMs?: number } = {}) {
  const r = await execa(kubectlPath(), ['--kubeconfig', simKubeconfigPath(), ...args], {
    input: opts.input,
    reject: false,
    timeout: opts.timeoutMs ?? 60_000,
  });
  const out = { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode: r.exitCode ?? -1 };
  if (out.exitCode !== 0 && !opts.allowFailure) throw new Error(`kubectl (sim) ${args.join(' ')} failed (${out.exitCode}): ${out.stderr.trim()}`);
  return out;
}

export async function simKubectlJson<T = any>(args: string[]): Promise<T> {
  return JSON.parse((await simKubectl([...args, '-o', 'json'])).stdout) as T;
}

async function simReady(): Promise<boolean> {
  if (!existsSync(simKubeconfigPath()) || !existsSync(kubectlPath())) return false;
  const r = await simKubectl(['get', '--raw', '/readyz'], { allowFailure: true, timeoutMs: 10_000 });
  return r.exitCode === 0 && r.stdout.trim() === 'ok';
}

/**
 * Starts the sim cluster when it is not up (the caller holds
 * /tmp/skiff-heavy.lock, as for every integration test), with `nodes`
 * simulated nodes, and waits until its context is in the shared kubeconfig.
 */
export async function ensureSimCluster(nodes = 50): Promise<void> {
  const have = (await simReady())
    ? Number((await simKubectl(['get', 'nodes', '-l', 'type=kwok', '--no-headers'], { allowFailure: true })).stdout.split('\n').filter(Boolean).length)
    : 0;
  if (have !== nodes) {
    const r = await execa(path.join(repoRoot, 'scripts', 'cluster'), ['up', '--sim', '--nodes', String(nodes)], { reject: false, all: true, timeout: 600_000 });
    if (r.exitCode !== 0) throw new Error(`scripts/cluster up --sim failed (${r.exitCode}):\n${r.all}`);
  }
  await waitFor(async () => readFileSync(kubeconfigPath(), 'utf8').includes(`name: ${SIM_CONTEXT}`), 10_000, {
    description: `context ${SIM_CONTEXT} in ${kubeconfigPath()}`,
  });
}
