import { hostname } from 'node:os';
import type { CiContext } from '../ci.js';
import { KubeApiError, type KubeClient } from '../kube/client.js';
import { WorkFailedError } from '../errors.js';
import type { Reporter } from '../context.js';

export interface LockOwner {
  user: string;
  host: string;
  pid: number;
  ciJobUrl?: string;
  action: string;
}

export interface ReleaseLock {
  release(): Promise<void>;
}

const LEASE_SECONDS = 30;

export function lockOwner(ci: Pick<CiContext, 'actor' | 'jobUrl'>, action: string): LockOwner {
  return { user: ci.actor, host: hostname(), pid: process.pid, ciJobUrl: ci.jobUrl, action };
}

function describeOwner(o: LockOwner): string {
  return `${o.action} by ${o.user}@${o.host} (pid ${o.pid})${o.ciJobUrl ? `, ${o.ciJobUrl}` : ''}`;
}

function parseOwner(holder: string | undefined): LockOwner | undefined {
  try {
    return holder ? (JSON.parse(holder) as LockOwner) : undefined;
  } catch {
    return { user: holder ?? '?', host: '?', pid: 0, action: 'unknown' };
  }
}

/**
 * One deploy, rollback or dismiss per release at a time, held as a
 * coordination.k8s.io Lease that names its owner and is renewed while the
 * work runs. A lease not renewed within its duration is stale (its holder
 * was killed) and is taken over with a warning, so nothing ever needs a
 * manual unlock. Writes use resourceVersion, so two takers cannot both win.
 */
export async function acquireReleaseLock(
  kube: KubeClient,
  opts: { namespace: string; release: string; owner: LockOwner; timeoutMs: number; reporter: Reporter; now: () => Date; signal: AbortSignal },
): Promise<ReleaseLock> {
  const name = `skiff-lock-${opts.release}`.slice(0, 253);
  const holder = JSON.stringify(opts.owner);
  const deadline = Date.now() + opts.timeoutMs;
  let announced = '';
  for (;;) {
    const now = opts.now();
    const lease = await kube.get('coordination.k8s.io/v1', 'Lease', opts.namespace, name);
    const body = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name,
        namespace: opts.namespace,
        labels: { 'app.kubernetes.io/managed-by': 'skiff', 'skiff.io/release': opts.release },
        ...(lease ? { resourceVersion: lease.metadata.resourceVersion } : {}),
      },
      spec: { holderIdentity: holder, leaseDurationSeconds: LEASE_SECONDS, acquireTime: microTime(now), renewTime: microTime(now) },
    };
    const spec = (lease?.spec ?? {}) as { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number };
    const current = parseOwner(spec.holderIdentity);
    const renewed = spec.renewTime ? Date.parse(spec.renewTime) : 0;
    const expired = !current || renewed + (spec.leaseDurationSeconds ?? LEASE_SECONDS) * 1000 < now.getTime();
    try {
      if (!lease) {
        await kube.create(body);
        break;
      }
      if (expired) {
        if (current)
          opts.reporter.warn(
            `taking over a stale lock of release ${opts.release}: ${describeOwner(current)} stopped renewing it ${Math.round((now.getTime() - renewed) / 1000)}s ago`,
          );
        await kube.replace(body);
        break;
      }
    } catch (e) {
      if (e instanceof KubeApiError && (e.status === 409 || e.reason === 'AlreadyExists' || e.reason === 'Conflict')) continue; // somebody else moved first: look again
      throw e;
    }
    const who = describeOwner(current);
    if (Date.now() >= deadline) {
      throw new WorkFailedError(
        'deploy',
        `release ${opts.release} is locked by ${who}; gave up after ${Math.round(opts.timeoutMs / 1000)}s (raise --lock-timeout to wait longer)`,
      );
    }
    if (announced !== who) {
      opts.reporter.info(`release ${opts.release} is locked by ${who}; waiting up to ${Math.round((deadline - Date.now()) / 1000)}s`);
      announced = who;
    }
    await sleep(1000, opts.signal);
  }

  // Renew well within the lease duration while the work runs.
  let stopped = false;
  const renew = async () => {
    const lease = await kube.get('coordination.k8s.io/v1', 'Lease', opts.namespace, name);
    if (!lease || (lease.spec as { holderIdentity?: string }).holderIdentity !== holder) return;
    (lease.spec as { renewTime: string }).renewTime = microTime(opts.now());
    await kube.replace(lease);
  };
  const timer = setInterval(
    () => {
      if (!stopped) renew().catch((e) => opts.reporter.debug(`lock renewal failed: ${(e as Error).message}`));
    },
    (LEASE_SECONDS * 1000) / 3,
  );
  timer.unref();
  return {
    async release() {
      stopped = true;
      clearInterval(timer);
      const lease = await kube.get('coordination.k8s.io/v1', 'Lease', opts.namespace, name).catch(() => undefined);
      if (lease && (lease.spec as { holderIdentity?: string }).holderIdentity === holder) {
        await kube.delete('coordination.k8s.io/v1', 'Lease', opts.namespace, name).catch(() => {});
      }
    },
  };
}

function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}
