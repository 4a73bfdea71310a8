// The release lock against the in-memory cluster: expiry decided by how long
// this run has watched the lease unchanged on its own clock, instant takeover
// only from a dead process of this very PID namespace and boot, "ours" only by
// the run id, conditional writes (one of two takers wins, release deletes
// only what it read), losing the lock stops every further write, renewal kept
// through an API server outage, and waiting without growing abort listeners.
import { randomUUID } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ConfigError, ExitCode, InfrastructureError, WorkFailedError } from '../../src/errors.js';
import type { LiveObject } from '../../src/kube/objects.js';
import { acquireReleaseLock, fenceWrites, lockTtlSeconds, type ReleaseLock } from '../../src/release/lock.js';
import { pidNamespaceIdentity, processAlive, type LockOwner } from '../../src/release/lock-owner.js';
import { SecretDriver } from '../../src/release/secret-driver.js';
import { ReleaseStorage } from '../../src/release/storage.js';
import type { ReleaseRecord, ReleaseStatus } from '../../src/release/release-record.js';
import { MemoryKube } from '../helpers/memory-kube.js';
import { recordingReporter } from '../helpers/orchestration.js';

const LEASE = 'skiff-lock-shop';
const DEAD_PID = 2 ** 22 + 12345; // above Linux's pid_max: no such process

/** A holder with a run id of its own: of this process, PID namespace and boot, unless another host is named (another boot). */
function owner(over: Partial<LockOwner> = {}): LockOwner {
  const machine = over.host === undefined || over.host === hostname() ? pidNamespaceIdentity() : { bootId: randomUUID(), pidNamespace: 4026531836 };
  return { user: 'dev', host: hostname(), pid: process.pid, action: 'deploy', runId: randomUUID(), ...machine, ...over };
}

function seedLease(kube: MemoryKube, holder: LockOwner | string, renewedAgoMs: number, ttl = 30) {
  const renew = new Date(Date.now() - renewedAgoMs).toISOString().replace(/Z$/, '000Z');
  kube.seed({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: LEASE, namespace: 'shop' },
    spec: { holderIdentity: typeof holder === 'string' ? holder : JSON.stringify(holder), leaseDurationSeconds: ttl, renewTime: renew, acquireTime: renew },
  });
}

function holderOf(kube: MemoryKube): LockOwner | undefined {
  const h = (kube.object('Lease', 'shop', LEASE)?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
  return h ? (JSON.parse(h) as LockOwner) : undefined;
}

function lockOpts(kube: MemoryKube, over: Partial<Parameters<typeof acquireReleaseLock>[1]> = {}) {
  void kube;
  return {
    namespace: 'shop',
    release: 'shop',
    owner: owner(),
    timeoutMs: 5_000,
    reporter: recordingReporter(),
    now: () => new Date(),
    signal: new AbortController().signal,
    pollMs: 20,
    ...over,
  };
}

/** A monotonic clock that moves only when the test says so. */
function manualClock() {
  let t = 0;
  return { monotonic: () => t, set: (ms: number) => (t = ms) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const leaseReads = (kube: MemoryKube) => kube.calls.filter((c) => c.verb === 'get' && c.kind === 'Lease').length;

/** Lets the waiters look at the lease a few more times. */
async function polls(kube: MemoryKube, n = 3) {
  const start = leaseReads(kube);
  while (leaseReads(kube) < start + n) await sleep(2);
}

/** A lock being acquired, and whether it has been. */
function acquiring(kube: MemoryKube, opts: Parameters<typeof acquireReleaseLock>[1]) {
  const state: { lock?: ReleaseLock; error?: unknown } = {};
  const done = acquireReleaseLock(kube, opts).then(
    (lock) => (state.lock = lock),
    (e: unknown) => (state.error = e),
  );
  return { state, done };
}

describe('release lock: expiry', () => {
  it('SKIFF_LOCK_TTL sets the lease duration in seconds; default 30; a bad value is bad input (exit 2)', async () => {
    expect(lockTtlSeconds({})).toBe(30);
    expect(lockTtlSeconds({ SKIFF_LOCK_TTL: '5' })).toBe(5);
    const bad = (() => {
      try {
        lockTtlSeconds({ SKIFF_LOCK_TTL: '1.5' });
      } catch (e) {
        return e;
      }
    })() as ConfigError;
    expect(bad).toBeInstanceOf(ConfigError);
    expect(bad.exitCode).toBe(ExitCode.badInput);
    expect(bad.message).toBe('SKIFF_LOCK_TTL="1.5" is not a whole number of seconds between 3 and 3600; unset it for the default of 30');
    const kube = new MemoryKube();
    const lock = await acquireReleaseLock(kube, lockOpts(kube, { ttlSeconds: 5 }));
    expect((kube.object('Lease', 'shop', LEASE)?.spec as { leaseDurationSeconds: number }).leaseDurationSeconds).toBe(5);
    await lock.release();
    expect(kube.object('Lease', 'shop', LEASE)).toBeUndefined();
  });

  it('a lease is taken over once this run has watched it unchanged for its duration, on its own clock, with a warning', async () => {
    const kube = new MemoryKube();
    seedLease(kube, owner({ host: 'runner-7', pid: 4242 }), 6_000, 5);
    const reporter = recordingReporter();
    const clock = manualClock();
    const { state, done } = acquiring(kube, lockOpts(kube, { reporter, ttlSeconds: 5, pollMs: 1, timeoutMs: 60_000, monotonic: clock.monotonic }));
    await polls(kube);
    clock.set(4_999);
    await polls(kube);
    expect(state.lock).toBeUndefined(); // its renewTime is 6 s old, but this run has not watched it for 5 s yet
    clock.set(5_000);
    await done;
    expect(reporter.warnings).toEqual([
      'taking over a stale lock of release shop: deploy by dev@runner-7 (pid 4242) did not renew it in the 5s this run watched it (lease duration 5s)',
    ]);
    expect(holderOf(kube)?.pid).toBe(process.pid);
    await state.lock!.release();
  });

  for (const [skew, offsetMs] of [
    ['20 s ahead', -20_000],
    ['20 s behind', 20_000],
  ] as const) {
    it(`a holder whose clock is ${skew} of ours is taken over after the lease duration of watching it unchanged, not earlier or later`, async () => {
      const kube = new MemoryKube();
      const other = owner({ host: 'laptop', pid: 4242 });
      seedLease(kube, other, offsetMs, 5); // its renewTime, by its clock
      const clock = manualClock();
      const { state, done } = acquiring(kube, lockOpts(kube, { ttlSeconds: 5, pollMs: 1, timeoutMs: 60_000, monotonic: clock.monotonic }));
      await polls(kube);
      clock.set(4_000);
      await polls(kube);
      expect(state.lock).toBeUndefined();
      // The holder renews (its renewTime, by its clock, moves on): watching starts over.
      seedLease(kube, other, offsetMs - 4_000, 5);
      await polls(kube);
      clock.set(8_999);
      await polls(kube);
      expect(state.lock).toBeUndefined();
      expect(holderOf(kube)?.host).toBe('laptop');
      clock.set(9_000);
      await done;
      expect(state.error).toBeUndefined();
      expect(holderOf(kube)?.pid).toBe(process.pid);
      await state.lock!.release();
    }, 15_000);
  }

  it('a fresh lease of another host is waited for, and the wait gives up with exit 1 naming the holder', async () => {
    const kube = new MemoryKube();
    seedLease(kube, owner({ host: 'runner-7', pid: 4242 }), 0);
    const reporter = recordingReporter();
    const err = (await acquireReleaseLock(kube, lockOpts(kube, { reporter, timeoutMs: 200 })).catch((e: unknown) => e)) as WorkFailedError;
    expect(err).toBeInstanceOf(WorkFailedError);
    expect(err.message).toBe('release shop is locked by deploy by dev@runner-7 (pid 4242); gave up after 0s (raise --lock-timeout to wait longer)');
    expect(holderOf(kube)?.host).toBe('runner-7');
  });
});

describe('release lock: a holder whose process is gone', () => {
  it('of this very PID namespace and boot is stale for certain: taken over at once, long before the lease expires', async () => {
    const kube = new MemoryKube();
    const dead = owner({ pid: DEAD_PID });
    expect(processAlive(dead.pid)).toBe(false);
    expect(dead.bootId).toMatch(/^[0-9a-f-]{36}$/);
    expect(dead.pidNamespace).toBeGreaterThan(0);
    seedLease(kube, dead, 0, 3600);
    const reporter = recordingReporter();
    const t0 = Date.now();
    const lock = await acquireReleaseLock(kube, lockOpts(kube, { reporter }));
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(reporter.warnings).toEqual([
      `taking over a stale lock of release shop: deploy by dev@${hostname()} (pid ${dead.pid}) is no longer running on this host`,
    ]);
    expect(holderOf(kube)?.pid).toBe(process.pid);
    await lock.release();
  });

  // Two GitLab jobs in two containers with one hostname: the other's pid means nothing here.
  for (const [what, differs] of [
    ['another PID namespace (a container with the same hostname)', { pidNamespace: 4026530000 }],
    ['another boot', { bootId: '00000000-0000-4000-8000-000000000000' }],
    ['no PID namespace or boot (a holder written before they were recorded)', { bootId: undefined, pidNamespace: undefined }],
  ] as const) {
    it(`of ${what} is not probed: same hostname and a pid dead here, and it waits for expiry`, async () => {
      const kube = new MemoryKube();
      const other = owner({ pid: DEAD_PID, ...differs });
      seedLease(kube, other, 0, 3600);
      const reporter = recordingReporter();
      const err = (await acquireReleaseLock(kube, lockOpts(kube, { reporter, timeoutMs: 200 })).catch((e: unknown) => e)) as WorkFailedError;
      expect(err).toBeInstanceOf(WorkFailedError);
      expect(err.message).toBe(
        `release shop is locked by deploy by dev@${hostname()} (pid ${DEAD_PID}); gave up after 0s (raise --lock-timeout to wait longer)`,
      );
      expect(reporter.warnings).toEqual([]);
      expect(holderOf(kube)?.runId).toBe(other.runId);
    });
  }

  it('a live process of this PID namespace keeps its lock', async () => {
    const kube = new MemoryKube();
    seedLease(kube, owner({ pid: 1 }), 0);
    const err = await acquireReleaseLock(kube, lockOpts(kube, { timeoutMs: 150 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkFailedError);
    expect(holderOf(kube)?.pid).toBe(1);
  });

  it("holder data that is not skiff's is described safely and is not mistaken for a dead local process", async () => {
    const kube = new MemoryKube();
    const me = pidNamespaceIdentity();
    seedLease(
      kube,
      `{"user":"x\\u001b[31m","host":${JSON.stringify(hostname())},"pid":"1; rm -rf /","bootId":${JSON.stringify(me.bootId)},"pidNamespace":"${me.pidNamespace}"}`,
      0,
    );
    const reporter = recordingReporter();
    const err = (await acquireReleaseLock(kube, lockOpts(kube, { reporter, timeoutMs: 100 })).catch((e: unknown) => e)) as WorkFailedError;
    expect(err.message).toMatch(/^release shop is locked by unknown by x\?\[31m@\S+ \(pid 0\)/);
  });
});

describe('release lock: waiting and renewing', () => {
  it('waiting through 200 polls adds no abort listener for good and prints no MaxListenersExceededWarning', async () => {
    const kube = new MemoryKube();
    seedLease(kube, owner({ host: 'runner-7', pid: 4242 }), 0);
    const ac = new AbortController();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const err = await acquireReleaseLock(kube, lockOpts(kube, { signal: ac.signal, pollMs: 1, timeoutMs: 600 })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkFailedError);
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    const polls = kube.calls.filter((c) => c.verb === 'get' && c.kind === 'Lease').length;
    expect(polls).toBeGreaterThan(50);
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
    expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
  });

  it('Ctrl-C while waiting stops the wait at once with exit 130', async () => {
    const kube = new MemoryKube();
    seedLease(kube, owner({ host: 'runner-7', pid: 4242 }), 0);
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('SIGINT')), 100);
    const t0 = Date.now();
    const err = (await acquireReleaseLock(kube, lockOpts(kube, { signal: ac.signal, pollMs: 1000, timeoutMs: 60_000 })).catch((e: unknown) => e)) as {
      exitCode: number;
      message: string;
    };
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(err.exitCode).toBe(ExitCode.interrupted);
    expect(err.message).toBe('interrupted while waiting for the lock of release shop');
  });

  it('renewals keep trying through an API server outage shorter than two thirds of the TTL, and the lock is kept', async () => {
    const kube = new MemoryKube();
    const reporter = recordingReporter();
    const lock = await acquireReleaseLock(kube, lockOpts(kube, { reporter, ttlSeconds: 6 })); // renewals every 2 s, deadline 4 s
    const renewTime = () => (kube.object('Lease', 'shop', LEASE)?.spec as { renewTime: string }).renewTime;
    const before = renewTime();
    let refused = 0;
    const outage = kube.rejectRequest(
      (call) => call.kind === 'Lease' && (refused++, true),
      new InfrastructureError('Kubernetes API https://127.0.0.1:6443 (context test) is unreachable: connect ECONNREFUSED'),
    );
    await new Promise((r) => setTimeout(r, 2_500)); // the renewal at 2 s is refused
    outage();
    await new Promise((r) => setTimeout(r, 2_000)); // past the first renewal's deadline (4 s)
    expect(refused).toBeGreaterThanOrEqual(1); // it kept trying while the server was down
    expect(renewTime()).not.toBe(before); // and renewed once it was back
    expect(lock.lost.aborted).toBe(false);
    expect(holderOf(kube)?.pid).toBe(process.pid);
    expect(reporter.warnings).toEqual([]);
    await lock.release();
    expect(kube.object('Lease', 'shop', LEASE)).toBeUndefined();
  }, 15_000);

  it('no successful renewal for two thirds of the TTL (API server unreachable from here): `lost` aborts, exit 1, and the fenced client writes nothing more', async () => {
    const kube = new MemoryKube();
    const t0 = performance.now();
    const lock = await acquireReleaseLock(kube, lockOpts(kube, { ttlSeconds: 3 })); // renewals every second, deadline 2 s
    const fenced = fenceWrites(kube, lock.lost);
    const outage = kube.rejectRequest(
      (call) => call.kind === 'Lease',
      new InfrastructureError('Kubernetes API https://127.0.0.1:6443 (context test) is unreachable: connect ECONNREFUSED'),
    );
    await new Promise((r) => lock.lost.addEventListener('abort', r, { once: true }));
    const after = performance.now() - t0;
    expect(after).toBeGreaterThanOrEqual(1_900); // not before the deadline: a third of the TTL is left before anyone may take over
    expect(after).toBeLessThan(2_600);
    const reason = lock.lost.reason as WorkFailedError;
    expect(reason).toBeInstanceOf(WorkFailedError);
    expect(reason.exitCode).toBe(ExitCode.failed);
    expect(reason.message).toBe('lost the lock of release shop: not renewed for 2s (API server unreachable); stopped, nothing more is applied or pruned');
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'web', namespace: 'shop' }, data: { a: '1' } };
    await expect(fenced.apply(cm)).rejects.toBe(reason);
    expect(kube.object('ConfigMap', 'shop', 'web')).toBeUndefined();
    // The server is back: the lease given up is not renewed again, and release frees it for the next run.
    outage();
    const renewTime = (kube.object('Lease', 'shop', LEASE)?.spec as { renewTime: string }).renewTime;
    await new Promise((r) => setTimeout(r, 1_200));
    expect((kube.object('Lease', 'shop', LEASE)?.spec as { renewTime: string }).renewTime).toBe(renewTime);
    await lock.release();
    expect(kube.object('Lease', 'shop', LEASE)).toBeUndefined();
  }, 15_000);

  it('a renewal stuck in the client (retrying for up to SKIFF_KUBE_RETRY_TIMEOUT) does not hold off the deadline', async () => {
    const kube = new HangingLeaseKube();
    const t0 = performance.now();
    const lock = await acquireReleaseLock(kube, lockOpts(kube, { ttlSeconds: 3 }));
    kube.hang = true; // the next read of the lease gets no answer
    await new Promise((r) => lock.lost.addEventListener('abort', r, { once: true }));
    expect(performance.now() - t0).toBeLessThan(2_600);
    expect((lock.lost.reason as Error).message).toBe(
      'lost the lock of release shop: not renewed for 2s (API server unreachable); stopped, nothing more is applied or pruned',
    );
    kube.hang = false;
    kube.answer();
    await lock.release();
  }, 15_000);

  it('an earlier attempt of ours that landed (lease already carries our run id) is our lock', async () => {
    const kube = new MemoryKube();
    const me = owner();
    seedLease(kube, me, 0);
    const reporter = recordingReporter();
    const lock = await acquireReleaseLock(kube, lockOpts(kube, { owner: me, reporter, timeoutMs: 100 }));
    expect(reporter.warnings).toEqual([]);
    await lock.release();
    expect(kube.object('Lease', 'shop', LEASE)).toBeUndefined();
  });

  it('a holder identical to us but for its run id is not ours: it is waited for', async () => {
    const kube = new MemoryKube();
    const me = owner();
    seedLease(kube, { ...me, runId: randomUUID() }, 0);
    const err = await acquireReleaseLock(kube, lockOpts(kube, { owner: me, timeoutMs: 100 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkFailedError);
  });

  it('an identical holder text without a run id (pid 1 in two containers, no job URL) is not ours', async () => {
    const kube = new MemoryKube();
    const twin: LockOwner = { user: 'ci', host: 'runner', pid: 1, action: 'deploy', runId: '' };
    seedLease(kube, JSON.stringify(twin), 0);
    const err = (await acquireReleaseLock(kube, lockOpts(kube, { owner: twin, timeoutMs: 100 })).catch((e: unknown) => e)) as WorkFailedError;
    expect(err).toBeInstanceOf(WorkFailedError);
    expect(err.message).toMatch(/^release shop is locked by deploy by ci@runner \(pid 1\); gave up/);
  });
});

/** A MemoryKube whose Lease reads, while `hang` is set, get no answer until `answer()`. */
class HangingLeaseKube extends MemoryKube {
  hang = false;
  private waiting: Array<() => void> = [];
  answer() {
    for (const w of this.waiting.splice(0)) w();
  }
  override async get(apiVersion: string, kind: string, namespace: string | undefined, name: string): Promise<LiveObject | undefined> {
    if (kind === 'Lease' && this.hang) await new Promise<void>((r) => this.waiting.push(r));
    return super.get(apiVersion, kind, namespace, name);
  }
}

/** A MemoryKube whose Lease reads wait at a gate the test opens: two takers read the same version. */
class GatedKube extends MemoryKube {
  gate: Promise<void> | undefined;
  override async get(apiVersion: string, kind: string, namespace: string | undefined, name: string): Promise<LiveObject | undefined> {
    const read = await super.get(apiVersion, kind, namespace, name);
    if (kind === 'Lease' && this.gate) await this.gate;
    return read;
  }
}

describe('release lock: conditional writes', () => {
  it('two waiters taking over one expired lease at the same moment: exactly one wins, the other keeps waiting', async () => {
    const kube = new GatedKube();
    seedLease(kube, owner({ host: 'runner-7', pid: 4242 }), 0, 5);
    const clock = manualClock();
    const opts = () => lockOpts(kube, { owner: owner({ host: 'waiter' }), ttlSeconds: 5, pollMs: 1, timeoutMs: 60_000, monotonic: clock.monotonic });
    const [a, b] = [acquiring(kube, opts()), acquiring(kube, opts())];
    await polls(kube, 4);
    let open!: () => void;
    kube.gate = new Promise((r) => (open = r));
    await polls(kube, 2); // each holds a read of the same version
    clock.set(5_000);
    open();
    await Promise.race([a.done, b.done]);
    await polls(kube, 6);
    const winners = [a, b].filter((x) => x.state.lock);
    expect(winners).toHaveLength(1);
    expect(kube.calls.filter((c) => c.verb === 'replace' && c.kind === 'Lease')).toHaveLength(2); // both tried
    const loser = winners[0] === a ? b : a;
    expect(loser.state.lock).toBeUndefined();
    expect(loser.state.error).toBeUndefined();
    kube.gate = undefined;
    await winners[0]!.state.lock!.release();
    await loser.done; // the lease is gone: the other takes it at once
    expect(loser.state.lock).toBeDefined();
    await loser.state.lock!.release();
  });

  it('release deletes only the lease it read: one taken over meanwhile stays', async () => {
    const kube = new GatedKube();
    const lock = await acquireReleaseLock(kube, lockOpts(kube));
    let open!: () => void;
    kube.gate = new Promise((r) => (open = r));
    const releasing = lock.release();
    await polls(kube, 1);
    const other = owner({ host: 'runner-7', pid: 4242 });
    seedLease(kube, other, 0); // another run takes it over between the read and the delete
    open();
    await releasing;
    expect(holderOf(kube)?.runId).toBe(other.runId);
  });
});

describe('release lock: lost', () => {
  it('renewal finding the lease taken by another run aborts `lost` with exit 1 naming the new holder, and the fenced client refuses every write', async () => {
    const kube = new MemoryKube();
    const reporter = recordingReporter();
    const lock = await acquireReleaseLock(kube, lockOpts(kube, { reporter, ttlSeconds: 3 }));
    const fenced = fenceWrites(kube, lock.lost);
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'web', namespace: 'shop' }, data: { a: '1' } };
    await fenced.apply(cm); // while the lock is held, writes go through
    seedLease(kube, owner({ user: 'ci', host: 'runner-7', pid: 4242 }), 0);
    const t0 = Date.now();
    await new Promise((r) => lock.lost.addEventListener('abort', r, { once: true }));
    expect(Date.now() - t0).toBeLessThan(1_500); // the next renewal (a third of the TTL) notices
    const reason = lock.lost.reason as WorkFailedError;
    expect(reason).toBeInstanceOf(WorkFailedError);
    expect(reason.exitCode).toBe(ExitCode.failed);
    expect(reason.message).toBe('lost the lock of release shop to deploy by ci@runner-7 (pid 4242); stopped, nothing more is applied or pruned');
    const before = kube.writes().length;
    for (const write of [
      () => fenced.apply({ ...cm, data: { a: '2' } }),
      () => fenced.create({ ...cm, metadata: { name: 'web-2', namespace: 'shop' } }),
      () => fenced.replace(cm),
      () => fenced.delete('v1', 'ConfigMap', 'shop', 'web'),
    ])
      await expect(write()).rejects.toBe(reason);
    expect(kube.writes()).toHaveLength(before);
    expect(kube.object('ConfigMap', 'shop', 'web')?.data).toEqual({ a: '1' });
    expect(await fenced.apply({ ...cm, data: { a: '3' } }, { dryRun: true })).toBeDefined(); // a dry run writes nothing
    await lock.release();
    expect(holderOf(kube)?.host).toBe('runner-7'); // not ours to delete
  });

  it('a deleted lease is a lost lock too', async () => {
    const kube = new MemoryKube();
    const lock = await acquireReleaseLock(kube, lockOpts(kube, { ttlSeconds: 3 }));
    await kube.delete('coordination.k8s.io/v1', 'Lease', 'shop', LEASE);
    await new Promise((r) => lock.lost.addEventListener('abort', r, { once: true }));
    expect((lock.lost.reason as Error).message).toBe(
      'lost the lock of release shop (its Lease skiff-lock-shop was deleted by someone else); stopped, nothing more is applied or pruned',
    );
    await lock.release();
  });

  it('after the lock is lost its storage writes only the closing of the revision, conditional on the record as this run wrote it: no update, superseding, pruning or deleteAll', async () => {
    const kube = new MemoryKube();
    const record = (revision: number, status: ReleaseStatus, description: string = status): ReleaseRecord => ({
      name: 'shop',
      namespace: 'shop',
      revision,
      status,
      description,
      environment: 'staging',
      project: 'shop',
      manifests: [],
      values: {},
      images: {},
      git: { commit: 'abc' },
      deployedBy: { user: 'ci', host: 'runner-1' },
      startedAt: '2026-12-01T10:00:00.000Z',
    });
    const lost = new AbortController();
    const storage = new ReleaseStorage(new SecretDriver(kube, 'shop'), 'shop', (r) => r).fenced(lost.signal);
    await storage.create(record(1, 'superseded'));
    await storage.create(record(2, 'deployed'));
    await storage.create(record(3, 'pending-upgrade'));
    await storage.create(record(4, 'pending-upgrade')); // say, the new holder's: not this run's to touch
    const reason = new WorkFailedError('deploy', 'lost the lock of release shop: not renewed for 20s (API server unreachable)');
    lost.abort(reason);
    expect(storage.lockLost).toBe(true);
    const before = kube.writes().length;
    for (const write of [
      () => storage.update(record(3, 'failed')),
      () => storage.markSuperseded('shop', 3),
      () => storage.pruneHistory('shop', 1),
      () => storage.deleteAll('shop'),
    ])
      await expect(write()).rejects.toBe(reason);
    expect(kube.writes()).toHaveLength(before);
    expect(await storage.closeAfterLostLock(record(3, 'failed', 'lost the lock'))).toBe(true);
    expect((await storage.history('shop')).map((r) => `${r.revision} ${r.status}`)).toEqual(['1 superseded', '2 deployed', '3 failed', '4 pending-upgrade']);
    expect(kube.writes().slice(before)).toEqual([{ verb: 'replace', kind: 'Secret', namespace: 'shop', name: 'skiff.release.v1.shop.v3' }]);
    // The run that took the lock over closed revision 4 (say) since this storage wrote it: left as that run wrote it.
    const other = new ReleaseStorage(new SecretDriver(kube, 'shop'), 'shop', (r) => r);
    await other.update(record(4, 'failed', 'interrupted: the upgrade run stopped before finishing'));
    expect(await storage.closeAfterLostLock(record(4, 'failed', 'lost the lock'))).toBe(false);
    expect((await other.get('shop', 4))?.description).toBe('interrupted: the upgrade run stopped before finishing');
  });
});
