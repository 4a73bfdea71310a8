// Helpers for tests that run against the real test cluster (`scripts/cluster up`).
// They never start the cluster themselves: a missing cluster is a test failure.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The local registry the cluster pulls from (plain HTTP, loopback only). */
export const REGISTRY = '127.0.0.1:5000';
/** Busybox base image, as the cluster's containerd sees it. */
export const BUSYBOX_IMAGE = `${REGISTRY}/skiff-base/busybox:1`;

/** Kubeconfig written by `scripts/cluster up` (override: SKIFF_KUBECONFIG). */
export function kubeconfigPath(): string {
  return process.env.SKIFF_KUBECONFIG ?? path.join(repoRoot, '.skiff', 'kubeconfig');
}

/** kubectl matching the cluster's version, linked by `scripts/cluster up` (override: SKIFF_KUBECTL). */
export function kubectlPath(): string {
  return process.env.SKIFF_KUBECTL ?? path.join(repoRoot, '.skiff', 'bin', 'kubectl');
}

export interface KubectlResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface KubectlOptions {
  /** Written to kubectl's stdin (e.g. a manifest for `apply -f -`). */
  input?: string;
  /** Return a non-zero exit instead of throwing. */
  allowFailure?: boolean;
  timeoutMs?: number;
}

/** Runs the cluster's kubectl against the test kubeconfig. Throws on failure unless allowFailure. */
export async function kubectl(args: string[], opts: KubectlOptions = {}): Promise<KubectlResult> {
  const result = await execa(kubectlPath(), ['--kubeconfig', kubeconfigPath(), ...args], {
    input: opts.input,
    reject: false,
    timeout: opts.timeoutMs ?? 60_000,
    env: { KUBECONFIG: kubeconfigPath() },
  });
  const out = {
    stdout: String(result.stdout ?? ''),
    stderr: String(result.stderr ?? ''),
    exitCode: result.exitCode ?? -1,
  };
  if (out.exitCode !== 0 && !opts.allowFailure) {
    throw new Error(`kubectl ${args.join(' ')} failed (${out.exitCode}): ${out.stderr.trim() || out.stdout.trim()}`);
  }
  return out;
}

/** `kubectl get ... -o json`, parsed. */
export async function kubectlJson<T = any>(args: string[]): Promise<T> {
  const { stdout } = await kubectl([...args, '-o', 'json']);
  return JSON.parse(stdout) as T;
}

let clusterCheck: Promise<void> | undefined;

/**
 * Fails (never skips) when the test cluster is not reachable, with the command
 * that fixes it. Cached: one check per test file.
 */
export function requireCluster(): Promise<void> {
  clusterCheck ??= (async () => {
    const hint = 'start it with `scripts/cluster up`';
    if (!existsSync(kubeconfigPath())) throw new Error(`no test cluster: ${kubeconfigPath()} is missing; ${hint}`);
    if (!existsSync(kubectlPath())) throw new Error(`no test cluster: ${kubectlPath()} is missing; ${hint}`);
    const ready = await kubectl(['get', '--raw', '/readyz'], { allowFailure: true, timeoutMs: 15_000 });
    if (ready.exitCode !== 0 || ready.stdout.trim() !== 'ok') {
      throw new Error(`test cluster is not ready (${ready.stderr.trim() || ready.stdout.trim()}); ${hint}`);
    }
  })();
  return clusterCheck;
}

export interface WaitOptions {
  intervalMs?: number;
  /** Shown in the timeout error. */
  description?: string;
}

/**
 * Polls fn until it returns something truthy, and returns that. Errors thrown by
 * fn count as "not yet"; the last one is reported if time runs out.
 */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs: number,
  opts: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  const interval = opts.intervalMs ?? 500;
  let last: unknown;
  let lastError: unknown;
  for (;;) {
    try {
      last = await fn();
      lastError = undefined;
      if (last) return last as T;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? lastError.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.description ?? 'condition'} (last: ${detail})`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/** A short random suffix for names and tags. */
export function uniqueSuffix(): string {
  return `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export interface TestNamespace {
  name: string;
  /** Deletes the namespace without waiting for its contents to go. */
  cleanup(): Promise<void>;
}

/** Creates a fresh namespace `<prefix>-<random>` labelled for the test run. */
export async function createNamespace(prefix: string): Promise<TestNamespace> {
  const name = `${prefix}-${uniqueSuffix()}`.toLowerCase().slice(0, 63).replace(/-+$/, '');
  await kubectl(['create', 'namespace', name]);
  await kubectl(['label', 'namespace', name, 'skiff.dev/test=true']);
  // Pods need the namespace's default ServiceAccount before they can be created.
  await waitFor(async () => (await kubectl(['-n', name, 'get', 'serviceaccount', 'default'], { allowFailure: true })).exitCode === 0, 30_000, {
    description: `default ServiceAccount in ${name}`,
  });
  return {
    name,
    async cleanup() {
      await kubectl(['delete', 'namespace', name, '--wait=false', '--ignore-not-found'], { allowFailure: true });
    },
  };
}

/** The first container's waiting reason of a pod, if any. */
export async function waitingReason(namespace: string, pod: string): Promise<string | undefined> {
  const p = await kubectlJson(['-n', namespace, 'get', 'pod', pod]);
  return p.status?.containerStatuses?.[0]?.state?.waiting?.reason;
}

/**
 * Builds fixtures/cluster-probe and pushes it to the local registry under a
 * unique tag; returns the reference the cluster pulls. The image prints
 * PROBE_LOG_LINE, then serves HTTP on :8080.
 */
export const PROBE_LOG_LINE = 'cluster-probe: serving on :8080';
export async function buildProbeImage(): Promise<string> {
  const image = `${REGISTRY}/cluster-probe/app:${uniqueSuffix()}`;
  const context = path.join(repoRoot, 'fixtures', 'cluster-probe');
  await execa('docker', ['build', '-q', '-t', image, context]);
  await execa('docker', ['push', '-q', image]);
  return image;
}
