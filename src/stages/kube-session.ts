import { KubeClient } from '../adapters/kube.js';
import type { RunContext } from '../context.js';
import { acquireReleaseLock, lockOwner, type ReleaseLock } from '../release/lock.js';
import { SecretDriver } from '../release/secret-driver.js';
import { ReleaseStorage } from '../release/storage.js';
import type { ReleaseTarget } from './release-inputs.js';

export interface KubeFlags {
  kubeconfig?: string;
  lockTimeoutMs?: number;
}

export async function connect(target: ReleaseTarget, flags: KubeFlags): Promise<{ kube: KubeClient; storage: ReleaseStorage }> {
  const kube = await KubeClient.connect({ context: target.kubeContext, kubeconfig: flags.kubeconfig });
  return { kube, storage: new ReleaseStorage(new SecretDriver(kube, target.namespace), target.namespace) };
}

/** Creates the release namespace when missing (server-side apply, so an existing one is left as it is). */
export async function ensureNamespace(kube: KubeClient, namespace: string): Promise<void> {
  if (await kube.get('v1', 'Namespace', undefined, namespace)) return;
  await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: { 'app.kubernetes.io/managed-by': 'skiff' } } });
}

/** Runs work while holding the release lock; the lock is released on every exit path. */
export async function withReleaseLock<T>(ctx: RunContext, kube: KubeClient, target: ReleaseTarget, action: string, flags: KubeFlags, work: () => Promise<T>): Promise<T> {
  const lock: ReleaseLock = await acquireReleaseLock(kube, {
    namespace: target.namespace,
    release: target.release,
    owner: lockOwner(ctx.env, action),
    timeoutMs: flags.lockTimeoutMs ?? 5 * 60_000,
    reporter: ctx.reporter,
    now: ctx.now,
    signal: ctx.signal,
  });
  try {
    return await work();
  } finally {
    await lock.release();
  }
}
