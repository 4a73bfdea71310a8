import { hostname } from 'node:os';
import type { CiContext } from '../ci.js';
import { KubeApiError, type KubeClient } from '../kube/client.js';
import { abortableSleep } from '../kube/retry.js';
import { ConfigError, ExitCode, SkiffError, WorkFailedError } from '../errors.js';
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

/** How long a lock outlives its last renewal when SKIFF_LOCK_TTL does not say. */
export const DEFAULT_LOCK_TTL_SECONDS = 30;
export const LOCK_TTL_ENV = 'SKIFF_LOCK_TTL';

/** SKIFF_LOCK_TTL in seconds (at least 3, so renewals every third of it stay meaningful); a bad value is bad input (exit 2). */
export function lockTtlSeconds(env: NodeJS.ProcessEnv): number {
  const raw = env[LOCK_TTL_ENV];
  if (raw === undefined || raw.trim() === '') return DEFAULT_LOCK_TTL_SECONDS;
  const seconds = Number(raw);
  if (!Number.isInteger(seconds) || seconds < 3 || seconds > 3600) {
    throw new ConfigError(
      `${LOCK_TTL_ENV}="${raw}" is not a whole number of seconds between 3 and 3600; unset it for the default of ${DEFAULT_LOCK_TTL_SECONDS}`,
    );
  }
  return seconds;
}

export function lockOwner(ci: Pick<CiContext, 'actor' | 'jobUrl'>, action: string): LockOwner {
  return { user: ci.actor, host: hostname(), pid: process.pid, ciJobUrl: ci.jobUrl, action };
}

function describeOwner(o: LockOwner): string {
  return `${o.action} by ${o.user}@${o.host} (pid ${o.pid})${o.ciJobUrl ? `, ${o.ciJobUrl}` : ''}`;
}

/** The holder identity is another program's writing: read only the fields skiff wrote, of the types it wrote. */
function parseOwner(holder: string | undefined): LockOwner | undefined {
  if (!holder) return undefined;
  let raw: Partial<Record<keyof LockOwner, unknown>> = {};
  try {
    const parsed: unknown = JSON.parse(holder);
    if (parsed && typeof parsed === 'object') raw = parsed;
  } catch {
    /* not skiff's: described by what little is known */
  }
  const text = (v: unknown, fallback: string) => (typeof v === 'string' ? v.replace(/[^\x20-\x7e]/g, '?').slice(0, 200) : fallback);
  return {
    user: text(raw.user, '?'),
    host: text(raw.host, '?'),
    pid: typeof raw.pid === 'number' && Number.isInteger(raw.pid) ? raw.pid : 0,
    ciJobUrl: typeof raw.ciJobUrl === 'string' ? text(raw.ciJobUrl, '') : undefined,
    action: text(raw.action, 'unknown'),
  };
}

/** Whether a process id is running on this host (a pid we may not signal still runs). */
export function processAlive(pid: number): boolean {
  if (!(pid > 0)) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One deploy, rollback or dismiss per release at a time, held as a
 * coordination.k8s.io Lease that names its owner and is renewed while the
 * work runs. A lease not renewed within its duration is stale (its holder
 * was killed) and is taken over with a warning, so nothing ever needs a
 * manual unlock; a holder on this host whose process is gone is stale at
 * once. Writes use resourceVersion, so two takers cannot both win. Renewal
 * keeps trying through an API server outage: the lock is only lost if
 * somebody else took it over after it expired.
 */
export async function acquireReleaseLock(
  kube: KubeClient,
  opts: {
    namespace: string;
    release: string;
    owner: LockOwner;
    timeoutMs: number;
    reporter: Reporter;
    now: () => Date;
    signal: AbortSignal;
    /** Lease duration (SKIFF_LOCK_TTL); default 30 s. */
    ttlSeconds?: number;
    /** Whether a pid on this host runs; injectable for tests. */
    alive?: (pid: number) => boolean;
    /** Poll interval while waiting; default 1 s. */
    pollMs?: number;
  },
): Promise<ReleaseLock> {
  const ttl = opts.ttlSeconds ?? DEFAULT_LOCK_TTL_SECONDS;
  const alive = opts.alive ?? processAlive;
  const name = `skiff-lock-${opts.release}`.slice(0, 253);
  const holder = JSON.stringify(opts.owner);
  const deadline = Date.now() + opts.timeoutMs;
  let announced = '';
  for (;;) {
    if (opts.signal.aborted) throw new SkiffError('interrupted', ExitCode.interrupted, `interrupted while waiting for the lock of release ${opts.release}`);
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
      spec: { holderIdentity: holder, leaseDurationSeconds: ttl, acquireTime: microTime(now), renewTime: microTime(now) },
    };
    const spec = (lease?.spec ?? {}) as { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number };
    // An earlier attempt of ours landed though its answer was lost (a retried write after a dropped connection).
    if (lease && spec.holderIdentity === holder) break;
    const current = parseOwner(spec.holderIdentity);
    const renewed = spec.renewTime ? Date.parse(spec.renewTime) : 0;
    const expired = !current || renewed + (spec.leaseDurationSeconds ?? ttl) * 1000 < now.getTime();
    const deadHere = current !== undefined && current.pid > 0 && current.host === opts.owner.host && current.pid !== opts.owner.pid && !alive(current.pid);
    try {
      if (!lease) {
        const created = await kube.create(body);
        if ((created.spec as { holderIdentity?: string } | undefined)?.holderIdentity === holder) break;
        continue;
      }
      if (expired || deadHere) {
        if (current)
          opts.reporter.warn(
            deadHere && !expired
              ? `taking over a stale lock of release ${opts.release}: ${describeOwner(current)} is no longer running on this host`
              : `taking over a stale lock of release ${opts.release}: ${describeOwner(current)} stopped renewing it ${Math.round((now.getTime() - renewed) / 1000)}s ago`,
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
    await abortableSleep(opts.pollMs ?? 1000, opts.signal);
  }

  // Renew well within the lease duration while the work runs; through an outage, keep trying.
  const stop = new AbortController();
  let lost = false;
  const renewOnce = async () => {
    const lease = await kube.get('coordination.k8s.io/v1', 'Lease', opts.namespace, name);
    if (!lease || (lease.spec as { holderIdentity?: string }).holderIdentity !== holder) {
      if (!lost) {
        lost = true;
        const by = parseOwner((lease?.spec as { holderIdentity?: string } | undefined)?.holderIdentity);
        opts.reporter.warn(`lost the lock of release ${opts.release}${by ? ` to ${describeOwner(by)}` : ''}: it was not renewed within ${ttl}s`);
      }
      return;
    }
    (lease.spec as { renewTime: string }).renewTime = microTime(opts.now());
    await kube.replace(lease);
  };
  const renewing = (async () => {
    while (!stop.signal.aborted && !lost) {
      await abortableSleep((ttl * 1000) / 3, stop.signal);
      if (stop.signal.aborted) break;
      // Each request retries through an outage on its own; past its bound, try again soon.
      for (let attempt = 0; !stop.signal.aborted && !lost; attempt++) {
        try {
          await renewOnce();
          break;
        } catch (e) {
          opts.reporter.debug(`lock renewal failed (will retry): ${(e as Error).message}`);
          await abortableSleep(Math.min(1000 * 2 ** attempt, (ttl * 1000) / 3), stop.signal);
        }
      }
    }
  })();
  return {
    async release() {
      stop.abort();
      await renewing;
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
