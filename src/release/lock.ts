import { randomUUID } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { CiContext } from '../gitlab/ci-variables.js';
import { KubeApiError, type KubeClient } from '../kube/client.js';
import type { LiveObject } from '../kube/objects.js';
import { abortableSleep } from '../kube/retry.js';
import { ConfigError, ExitCode, SkiffError, WorkFailedError } from '../errors.js';
import type { Reporter } from '../context.js';

export interface LockOwner {
  user: string;
  host: string;
  pid: number;
  ciJobUrl?: string;
  action: string;
  /**
   * A random id of this run. A lease is ours only when it carries it: two
   * containers can write the very same rest (pid 1, same hostname, no job URL).
   * '' in holders written before it existed.
   */
  runId: string;
  /**
   * The boot (/proc/sys/kernel/random/boot_id) and the PID namespace (the
   * inode of /proc/self/ns/pid) the pid belongs to. A pid means nothing
   * without them: jobs in two containers often share a hostname. Absent off
   * Linux and in holders written before they existed.
   */
  bootId?: string;
  pidNamespace?: number;
}

export interface ReleaseLock {
  /**
   * Aborted when renewal finds the lease gone or held by another run, or has
   * not succeeded for two thirds of the lease duration (the API server cannot
   * be reached from here, while another runner may reach it and take the lock
   * over once the lease expires); its reason is the WorkFailedError (exit 1)
   * the run ends with.
   */
  readonly lost: AbortSignal;
  release(): Promise<void>;
}

/**
 * The part of the lease duration a run may go without a successful renewal
 * before it stops (client-go's RenewDeadline: 10 s of 15): another runner
 * takes over after the whole duration, so a run that cannot reach the API
 * server gives up its lock a third of the duration before anyone can take it.
 */
export const RENEW_DEADLINE_FRACTION = 2 / 3;

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

/** The holder of a lock taken now: who, where, and a random id no other run has. */
export function lockOwner(ci: Pick<CiContext, 'actor' | 'jobUrl'>, action: string): LockOwner {
  return { user: ci.actor, host: hostname(), pid: process.pid, ciJobUrl: ci.jobUrl, action, runId: randomUUID(), ...pidNamespaceIdentity() };
}

/** This process's boot and PID namespace, where /proc tells them (Linux); empty elsewhere. */
export function pidNamespaceIdentity(): Pick<LockOwner, 'bootId' | 'pidNamespace'> {
  try {
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const pidNamespace = statSync('/proc/self/ns/pid').ino;
    return bootId && pidNamespace > 0 ? { bootId, pidNamespace } : {};
  } catch {
    return {};
  }
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
    runId: text(raw.runId, ''),
    bootId: typeof raw.bootId === 'string' && raw.bootId ? text(raw.bootId, '') : undefined,
    pidNamespace: typeof raw.pidNamespace === 'number' && Number.isInteger(raw.pidNamespace) && raw.pidNamespace > 0 ? raw.pidNamespace : undefined,
  };
}

/** The same run: only the random run id says so (old holders have none and are never ours). */
function sameRun(holder: LockOwner | undefined, me: LockOwner): boolean {
  return holder !== undefined && holder.runId !== '' && holder.runId === me.runId;
}

/** Whether the holder proves its pid is one of this PID namespace on this boot, so that probing the pid here means something. */
function samePidNamespace(holder: LockOwner, me: LockOwner): boolean {
  return holder.bootId !== undefined && holder.pidNamespace !== undefined && holder.bootId === me.bootId && holder.pidNamespace === me.pidNamespace;
}

const holderOf = (lease: LiveObject | undefined): string | undefined => {
  const h: unknown = (lease?.spec as { holderIdentity?: unknown } | undefined)?.holderIdentity;
  return typeof h === 'string' ? h : undefined;
};

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
 * work runs. As in client-go's leader election, a lease is stale when this
 * process has watched it unchanged for its duration on its own monotonic
 * clock (the holder's renewTime is never compared with our wall clock, which
 * may be off); it is then taken over with a warning, so nothing ever needs a
 * manual unlock. A holder whose pid is gone is stale at once only when it
 * proves it ran in this very PID namespace on this very boot; one that merely
 * shares the hostname waits for expiry. Every write is conditional on the
 * resourceVersion read, so two takers cannot both win. Renewal keeps trying
 * through an API server outage, for two thirds of the lease duration since
 * the last renewal that succeeded (on our monotonic clock); past that, or if
 * it finds the lease gone or taken by another run, `lost` aborts and the run
 * must stop.
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
    /** Whether a pid in this PID namespace runs; injectable for tests. */
    alive?: (pid: number) => boolean;
    /** Poll interval while waiting; default 1 s. */
    pollMs?: number;
    /** Monotonic milliseconds (default performance.now), which expiry and the wait's deadline go by; injectable for tests. */
    monotonic?: () => number;
  },
): Promise<ReleaseLock> {
  const ttl = opts.ttlSeconds ?? DEFAULT_LOCK_TTL_SECONDS;
  const alive = opts.alive ?? processAlive;
  const monotonic = opts.monotonic ?? (() => performance.now());
  const name = `skiff-lock-${opts.release}`.slice(0, 253);
  const holder = JSON.stringify(opts.owner);
  const deadline = monotonic() + opts.timeoutMs;
  let announced = '';
  /** The lease as last seen, and when (on our clock) it was first seen so. */
  let observed: { record: string; since: number } | undefined;
  /** When (on our clock) the look that ended in holding the lease began: no write of it can have landed earlier. */
  let heldSince = monotonic();
  for (;;) {
    if (opts.signal.aborted) throw new SkiffError('interrupted', ExitCode.interrupted, `interrupted while waiting for the lock of release ${opts.release}`);
    heldSince = monotonic();
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
    const spec = (lease?.spec ?? {}) as { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: unknown };
    const current = parseOwner(spec.holderIdentity);
    // An earlier attempt of ours landed though its answer was lost (a retried write after a dropped connection).
    if (lease && sameRun(current, opts.owner)) break;
    const record = JSON.stringify([lease?.metadata.resourceVersion, spec.holderIdentity, spec.renewTime]);
    if (observed?.record !== record) observed = { record, since: monotonic() };
    const unchangedMs = monotonic() - observed.since;
    const durationS = typeof spec.leaseDurationSeconds === 'number' && spec.leaseDurationSeconds > 0 ? spec.leaseDurationSeconds : ttl;
    const expired = !current || unchangedMs >= durationS * 1000;
    const deadHere = current !== undefined && current.pid > 0 && samePidNamespace(current, opts.owner) && current.pid !== opts.owner.pid && !alive(current.pid);
    try {
      if (!lease) {
        const created = await kube.create(body);
        if (sameRun(parseOwner(holderOf(created)), opts.owner)) break;
        continue;
      }
      if (expired || deadHere) {
        await kube.replace(body); // conditional on the resourceVersion read: of two takers, one wins
        if (current)
          opts.reporter.warn(
            deadHere && !expired
              ? `taking over a stale lock of release ${opts.release}: ${describeOwner(current)} is no longer running on this host`
              : `taking over a stale lock of release ${opts.release}: ${describeOwner(current)} did not renew it in the ${Math.round(unchangedMs / 1000)}s this run watched it (lease duration ${durationS}s)`,
          );
        break;
      }
    } catch (e) {
      if (e instanceof KubeApiError && (e.status === 409 || e.reason === 'AlreadyExists' || e.reason === 'Conflict')) continue; // somebody else moved first: look again
      throw e;
    }
    const who = describeOwner(current);
    if (monotonic() >= deadline) {
      throw new WorkFailedError(
        'deploy',
        `release ${opts.release} is locked by ${who}; gave up after ${Math.round(opts.timeoutMs / 1000)}s (raise --lock-timeout to wait longer)`,
      );
    }
    if (announced !== who) {
      opts.reporter.info(`release ${opts.release} is locked by ${who}; waiting up to ${Math.round((deadline - monotonic()) / 1000)}s`);
      announced = who;
    }
    await abortableSleep(opts.pollMs ?? 1000, opts.signal);
  }

  // Renew well within the lease duration while the work runs; through an outage, keep trying until the renew deadline.
  const stop = new AbortController();
  const lost = new AbortController();
  const renewDeadlineMs = ttl * 1000 * RENEW_DEADLINE_FRACTION;
  let renewedAt = heldSince;
  // A timer of its own, so that a renewal stuck in the client's retries (up to SKIFF_KUBE_RETRY_TIMEOUT) cannot hold it off.
  let deadlineTimer: NodeJS.Timeout | undefined;
  const armDeadline = () => {
    clearTimeout(deadlineTimer);
    deadlineTimer = setTimeout(
      () => {
        if (stop.signal.aborted || lost.signal.aborted) return;
        lost.abort(
          new WorkFailedError(
            'deploy',
            `lost the lock of release ${opts.release}: not renewed for ${Math.round(Math.max(monotonic() - renewedAt, renewDeadlineMs) / 1000)}s (API server unreachable); stopped, nothing more is applied or pruned`,
          ),
        );
      },
      Math.max(0, renewedAt + renewDeadlineMs - monotonic()),
    );
    deadlineTimer.unref();
  };
  armDeadline();
  const renewOnce = async () => {
    const started = monotonic();
    const lease = await kube.get('coordination.k8s.io/v1', 'Lease', opts.namespace, name);
    if (lost.signal.aborted) return; // stepped down meanwhile: a lease we gave up is not renewed again
    const current = parseOwner(holderOf(lease));
    if (!lease || !sameRun(current, opts.owner)) {
      lost.abort(
        new WorkFailedError(
          'deploy',
          `lost the lock of release ${opts.release} ${current ? `to ${describeOwner(current)}` : `(its Lease ${name} was ${lease ? 'emptied' : 'deleted'} by someone else)`}; stopped, nothing more is applied or pruned`,
        ),
      );
      return;
    }
    (lease.spec as { renewTime: string }).renewTime = microTime(opts.now());
    await kube.replace(lease, { signal: lost.signal }); // conditional: a takeover since the read makes it a conflict, and the next look finds it
    renewedAt = started;
    armDeadline();
  };
  const renewing = (async () => {
    while (!stop.signal.aborted && !lost.signal.aborted) {
      await abortableSleep((ttl * 1000) / 3, stop.signal);
      if (stop.signal.aborted) break;
      // Each request retries through an outage on its own; past its bound, try again soon.
      for (let attempt = 0; !stop.signal.aborted && !lost.signal.aborted; attempt++) {
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
    lost: lost.signal,
    async release() {
      stop.abort();
      clearTimeout(deadlineTimer);
      await renewing;
      const lease = await kube.get('coordination.k8s.io/v1', 'Lease', opts.namespace, name).catch(() => undefined);
      if (lease && sameRun(parseOwner(holderOf(lease)), opts.owner)) {
        // Only the lease as read: one taken over meanwhile is not ours to delete.
        const resourceVersion = lease.metadata.resourceVersion;
        await kube
          .delete('coordination.k8s.io/v1', 'Lease', opts.namespace, name, 'Background', typeof resourceVersion === 'string' ? { resourceVersion } : undefined)
          .catch(() => {});
      }
    },
  };
}

/**
 * The client the work under a lock writes objects with: once the lock is
 * lost, every write is refused with the lost lock's error before it is sent,
 * and a write under way stops (its retries through an outage included): each
 * is sent with `lost`, and the run's own `signal` if given, as its signal.
 * Reads and dry runs go through.
 */
export function fenceWrites(kube: KubeClient, lost: AbortSignal, signal?: AbortSignal): KubeClient {
  const stopped = signal ? AbortSignal.any([lost, signal]) : lost;
  const fenced = async <T>(write: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    lost.throwIfAborted();
    try {
      return await write(stopped);
    } catch (e) {
      lost.throwIfAborted(); // whatever the write stopped on, the lost lock is the cause
      throw e;
    }
  };
  return {
    get context() {
      return kube.context;
    },
    get server() {
      return kube.server;
    },
    get defaultNamespace() {
      return kube.defaultNamespace;
    },
    apply: async (obj, o) => (o?.dryRun ? kube.apply(obj, o) : fenced((signal) => kube.apply(obj, { ...o, signal }))),
    get: (...a) => kube.get(...a),
    list: (...a) => kube.list(...a),
    namespacesWith: (...a) => kube.namespacesWith(...a),
    create: async (obj) => fenced((signal) => kube.create(obj, { signal })),
    replace: async (obj) => fenced((signal) => kube.replace(obj, { signal })),
    delete: async (apiVersion, kind, namespace, name, propagation, preconditions) =>
      fenced((signal) => kube.delete(apiVersion, kind, namespace, name, propagation, preconditions, { signal })),
    logs: (...a) => kube.logs(...a),
    watch: (...a) => kube.watch(...a),
  };
}

function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
