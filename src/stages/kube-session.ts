import type { RunContext } from '../context.js';
import { setMaxListeners } from 'node:events';
import type { KubeClient } from '../kube/kube-client.js';
import { MANAGED_BY_LABEL } from '../kube/objects.js';
import { loadProject, type Project } from '../project.js';
import { acquireReleaseLock, fenceWrites, lockTtlSeconds, type ReleaseLock } from '../release/lock.js';
import { lockOwner } from '../release/lock-owner.js';
import { SecretDriver } from '../release/secret-driver.js';
import { ReleaseStorage } from '../release/storage.js';
import { sealRecord } from '../secrets/redact.js';
import { resolveTarget, type ReleaseTarget, type TargetOptions } from './release-inputs.js';

export interface KubeFlags {
  kubeconfig?: string;
  lockTimeoutMs?: number;
}

export interface ClusterSession {
  kube: KubeClient;
  storage: ReleaseStorage;
}

/** The cluster of a target (or the client given) and the release storage in its namespace. */
export async function connect(
  ctx: RunContext,
  target: Pick<ReleaseTarget, 'namespace' | 'kubeContext'> & { kubeconfig?: string },
  flags: KubeFlags,
  client?: KubeClient,
): Promise<ClusterSession> {
  lockTtlSeconds(ctx.env); // a bad SKIFF_LOCK_TTL is bad input, found before anything is written
  const kube = client ?? (await ctx.kube({ context: target.kubeContext, kubeconfig: target.kubeconfig ?? flags.kubeconfig }));
  return { kube, storage: new ReleaseStorage(new SecretDriver(kube, target.namespace), target.namespace, sealRecord) };
}

/**
 * For the commands that read or change a release without building or
 * rendering it (history, status, rollback, dismiss): the project, the target
 * and its cluster. Uncommitted changes are no concern of theirs.
 */
export async function openRelease(ctx: RunContext, opts: TargetOptions): Promise<ClusterSession & { project: Project; target: ReleaseTarget }> {
  const project = await loadProject(ctx, { ...opts, readOnly: true });
  const target = resolveTarget(project, opts.env, opts, ctx.ci);
  return { project, target, ...(await connect(ctx, target, opts)) };
}

/** Creates the release namespace when missing (server-side apply, so an existing one is left as it is). */
export async function ensureNamespace(kube: KubeClient, namespace: string): Promise<void> {
  if (await kube.get('v1', 'Namespace', undefined, namespace)) return;
  await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: { [MANAGED_BY_LABEL]: 'skiff' } } });
}

/**
 * Runs work while holding the release lock; the lock is released on every
 * exit path. The work gets the context, client and storage to use: if the
 * lock is lost (renewal finds it gone or taken, or has not succeeded for two
 * thirds of its duration), the context's signal aborts (tracking and hooks
 * stop), the client and the storage refuse every further write and stop the
 * one under way, and the run ends with the lost lock's error (exit 1). The
 * storage's closeAfterLostLock is the one write left: the revision closed as
 * failed, if nobody changed its record since.
 */
export async function withReleaseLock<T>(
  ctx: RunContext,
  { kube, storage }: ClusterSession,
  target: Pick<ReleaseTarget, 'namespace' | 'release'>,
  action: string,
  flags: KubeFlags,
  work: (held: { ctx: RunContext; kube: KubeClient; storage: ReleaseStorage }) => Promise<T>,
): Promise<T> {
  const lock: ReleaseLock = await acquireReleaseLock(kube, {
    namespace: target.namespace,
    release: target.release,
    owner: lockOwner(ctx.ci, action),
    timeoutMs: flags.lockTimeoutMs ?? 5 * 60_000,
    reporter: ctx.reporter,
    now: ctx.now,
    signal: ctx.signal,
    ttlSeconds: lockTtlSeconds(ctx.env),
  });
  try {
    const signal = AbortSignal.any([ctx.signal, lock.lost]);
    setMaxListeners(0, signal); // every request in flight listens: many, and none of them a leak
    const result = await work({
      ctx: { ...ctx, signal },
      kube: fenceWrites(kube, lock.lost, ctx.signal),
      storage: storage.fenced(lock.lost),
    });
    lock.lost.throwIfAborted();
    return result;
  } catch (e) {
    lock.lost.throwIfAborted(); // whatever the work stopped on, the lost lock is the cause
    throw e;
  } finally {
    await lock.release();
  }
}
