// The release lock against the in-memory cluster: expiry from SKIFF_LOCK_TTL,
// instant takeover from a dead process on this host, renewal kept through an
// API server outage, and waiting without growing the run's abort listeners.
import { getEventListeners } from 'node:events';
import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ConfigError, ExitCode, InfrastructureError, WorkFailedError } from '../../src/errors.js';
import { acquireReleaseLock, lockTtlSeconds, processAlive, type LockOwner } from '../../src/release/lock.js';
import { MemoryKube } from '../helpers/memory-kube.js';
import { recordingReporter } from '../helpers/orchestration.js';

const LEASE = 'skiff-lock-shop';

function owner(over: Partial<LockOwner> = {}): LockOwner {
  return { user: 'dev', host: hostname(), pid: process.pid, action: 'deploy', ...over };
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

  it('a lease of another host not renewed within its TTL is taken over with a warning', async () => {
    const kube = new MemoryKube();
    seedLease(kube, owner({ host: 'runner-7', pid: 4242 }), 6_000, 5);
    const reporter = recordingReporter();
    const lock = await acquireReleaseLock(kube, lockOpts(kube, { reporter, ttlSeconds: 5 }));
    expect(reporter.warnings).toEqual([
      expect.stringMatching(/^taking over a stale lock of release shop: deploy by dev@runner-7 \(pid 4242\) stopped renewing it 6s ago$/),
    ]);
    expect(holderOf(kube)?.pid).toBe(process.pid);
    await lock.release();
  });

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

describe('release lock: a holder on this host whose process is gone', () => {
  it('is stale for certain: taken over at once, long before the lease expires', async () => {
    const kube = new MemoryKube();
    const dead = owner({ pid: 2 ** 22 + 12345 }); // above Linux's pid_max: no such process
    expect(processAlive(dead.pid)).toBe(false);
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

  it('a live process on this host keeps its lock', async () => {
    const kube = new MemoryKube();
    seedLease(kube, owner({ pid: 1 }), 0);
    const err = await acquireReleaseLock(kube, lockOpts(kube, { timeoutMs: 150 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkFailedError);
    expect(holderOf(kube)?.pid).toBe(1);
  });

  it("holder data that is not skiff's is described safely and is not mistaken for a dead local process", async () => {
    const kube = new MemoryKube();
    seedLease(kube, `{"user":"x\\u001b[31m","host":${JSON.stringify(hostname())},"pid":"1; rm -rf /"}`, 0);
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

  it('renewals keep trying through an API server outage longer than the TTL, and the lock is kept', async () => {
    const kube = new MemoryKube();
    const reporter = recordingReporter();
    const lock = await acquireReleaseLock(kube, lockOpts(kube, { reporter, ttlSeconds: 3 }));
    const renewTime = () => (kube.object('Lease', 'shop', LEASE)?.spec as { renewTime: string }).renewTime;
    const before = renewTime();
    let refused = 0;
    const outage = kube.rejectRequest(
      (call) => call.kind === 'Lease' && (refused++, true),
      new InfrastructureError('Kubernetes API https://127.0.0.1:6443 (context test) is unreachable: connect ECONNREFUSED'),
    );
    await new Promise((r) => setTimeout(r, 3_500)); // down for longer than the TTL
    outage();
    await new Promise((r) => setTimeout(r, 1_500));
    expect(refused).toBeGreaterThanOrEqual(2); // it kept trying while the server was down
    expect(renewTime()).not.toBe(before); // and renewed once it was back
    expect(holderOf(kube)?.pid).toBe(process.pid);
    expect(reporter.warnings).toEqual([]);
    await lock.release();
    expect(kube.object('Lease', 'shop', LEASE)).toBeUndefined();
  }, 15_000);

  it('an earlier attempt of ours that landed (lease already names us) is our lock', async () => {
    const kube = new MemoryKube();
    seedLease(kube, owner(), 0);
    const reporter = recordingReporter();
    const lock = await acquireReleaseLock(kube, lockOpts(kube, { reporter, timeoutMs: 100 }));
    expect(reporter.warnings).toEqual([]);
    await lock.release();
    expect(kube.object('Lease', 'shop', LEASE)).toBeUndefined();
  });
});
