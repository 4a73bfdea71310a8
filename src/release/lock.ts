import { performance } from 'node:perf_hooks';
import { setMaxListeners } from 'node:events';
import { KubeApiError, type KubeClient } from '../kube/kube-client.js';
import { describeOwner, holderOf, parseOwner, processAlive, samePidNamespace, sameRun, type LockOwner } from './lock-owner.js';
import { abortableSleep } from '../kube/retry.js';
import { ConfigError, ExitCode, SkiffError, WorkFailedError } from '../errors.js';
import type { Reporter } from '../context.js';

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

export interface ReleaseLockOptions {
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
}

/** The Lease of a release lock: its name, its duration in seconds, and the monotonic clock it is judged by. */
interface LeaseTerms {
  name: string;
  ttl: number;
  monotonic: () => number;
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
export async function acquireReleaseLock(kube: KubeClient, opts: ReleaseLockOptions): Promise<ReleaseLock> {
  const terms: LeaseTerms = {
    name: `skiff-lock-${opts.release}`.slice(0, 253),
    ttl: opts.ttlSeconds ?? DEFAULT_LOCK_TTL_SECONDS,
    monotonic: opts.monotonic ?? (() => performance.now()),
  };
  const heldSince = await takeLease(kube, opts, terms);
  return holdLease(kube, opts, terms, heldSince);
}

/** The lease as last seen, and when (on our clock) it was first seen so. */
interface LeaseWatch {
  observed?: { record: string; since: number };
}

/** Waits until this run holds the lease (else exit 1 at the timeout); returns when (on our clock) the winning look began. */
async function takeLease(kube: KubeClient, opts: ReleaseLockOptions, terms: LeaseTerms): Promise<number> {
  const { monotonic } = terms;
  const deadline = monotonic() + opts.timeoutMs;
  let announced = '';
  const watched: LeaseWatch = {};
  for (;;) {
    if (opts.signal.aborted) throw new SkiffError('interrupted', ExitCode.interrupted, `interrupted while waiting for the lock of release ${opts.release}`);
    const heldSince = monotonic(); // no write from this look can have landed earlier
    const look = await tryTakeLease(kube, opts, terms, watched);
    if (look === 'held') return heldSince;
    if (look === 'look-again') continue;
    const who = describeOwner(look);
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
}

/** One look at the lease: taken (created, or a stale one replaced), lost to a faster taker (look again), or held by a live owner. */
async function tryTakeLease(
  kube: KubeClient,
  opts: ReleaseLockOptions,
  { name, ttl, monotonic }: LeaseTerms,
  watched: LeaseWatch,
): Promise<'held' | 'look-again' | LockOwner> {
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
    spec: { holderIdentity: JSON.stringify(opts.owner), leaseDurationSeconds: ttl, acquireTime: microTime(now), renewTime: microTime(now) },
  };
  const spec = (lease?.spec ?? {}) as { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: unknown };
  const current = parseOwner(spec.holderIdentity);
  // An earlier attempt of ours landed though its answer was lost (a retried write after a dropped connection).
  if (lease && sameRun(current, opts.owner)) return 'held';
  const record = JSON.stringify([lease?.metadata.resourceVersion, spec.holderIdentity, spec.renewTime]);
  if (watched.observed?.record !== record) watched.observed = { record, since: monotonic() };
  const unchangedMs = monotonic() - watched.observed.since;
  const durationS = typeof spec.leaseDurationSeconds === 'number' && spec.leaseDurationSeconds > 0 ? spec.leaseDurationSeconds : ttl;
  const expired = unchangedMs >= durationS * 1000;
  const alive = opts.alive ?? processAlive;
  const deadHere = current !== undefined && current.pid > 0 && samePidNamespace(current, opts.owner) && current.pid !== opts.owner.pid && !alive(current.pid);
  try {
    if (!lease) return sameRun(parseOwner(holderOf(await kube.create(body))), opts.owner) ? 'held' : 'look-again';
    if (!current || expired || deadHere) {
      await kube.replace(body); // conditional on the resourceVersion read: of two takers, one wins
      if (current)
        opts.reporter.warn(
          deadHere && !expired
            ? `taking over a stale lock of release ${opts.release}: ${describeOwner(current)} is no longer running on this host`
            : `taking over a stale lock of release ${opts.release}: ${describeOwner(current)} did not renew it in the ${Math.round(unchangedMs / 1000)}s this run watched it (lease duration ${durationS}s)`,
        );
      return 'held';
    }
  } catch (e) {
    if (e instanceof KubeApiError && (e.status === 409 || e.reason === 'AlreadyExists' || e.reason === 'Conflict')) return 'look-again'; // somebody else moved first
    throw e;
  }
  return current;
}

/** Renews the held lease well within its duration while the work runs; through an outage, keeps trying until the renew deadline. */
function holdLease(kube: KubeClient, opts: ReleaseLockOptions, { name, ttl, monotonic }: LeaseTerms, heldSince: number): ReleaseLock {
  const stop = new AbortController();
  const lost = new AbortController();
  setMaxListeners(0, lost.signal); // the run's writes in flight each listen: many, and none of them a leak
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
    if (!(await renewLease(kube, opts, name, lost))) return;
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
      await deleteLease(kube, opts, name);
    },
  };
}

/** One renewal; false when the lock is lost (then `lost` is aborted with the reason) or was already. */
async function renewLease(kube: KubeClient, opts: ReleaseLockOptions, name: string, lost: AbortController): Promise<boolean> {
  const lease = await kube.get('coordination.k8s.io/v1', 'Lease', opts.namespace, name);
  if (lost.signal.aborted) return false; // stepped down meanwhile: a lease we gave up is not renewed again
  const current = parseOwner(holderOf(lease));
  if (!lease || !sameRun(current, opts.owner)) {
    lost.abort(
      new WorkFailedError(
        'deploy',
        `lost the lock of release ${opts.release} ${current ? `to ${describeOwner(current)}` : `(its Lease ${name} was ${lease ? 'emptied' : 'deleted'} by someone else)`}; stopped, nothing more is applied or pruned`,
      ),
    );
    return false;
  }
  (lease.spec as { renewTime: string }).renewTime = microTime(opts.now());
  await kube.replace(lease, { signal: lost.signal }); // conditional: a takeover since the read makes it a conflict, and the next look finds it
  return true;
}

/** Deletes the lease if this run still holds it: one taken over meanwhile is not ours to delete. */
async function deleteLease(kube: KubeClient, opts: ReleaseLockOptions, name: string): Promise<void> {
  const lease = await kube.get('coordination.k8s.io/v1', 'Lease', opts.namespace, name).catch(() => undefined);
  if (!lease || !sameRun(parseOwner(holderOf(lease)), opts.owner)) return;
  // Only the lease as read (its resourceVersion).
  const resourceVersion = lease.metadata.resourceVersion;
  await kube
    .delete('coordination.k8s.io/v1', 'Lease', opts.namespace, name, 'Background', typeof resourceVersion === 'string' ? { resourceVersion } : undefined)
    .catch(() => {});
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
