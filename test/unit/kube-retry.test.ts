// HttpKubeClient against a real HTTP server on 127.0.0.1 that refuses, drops,
// answers 503 or rate-limits with 429 + Retry-After: what a managed cluster's
// control-plane upgrade or an overloaded API server looks like to skiff.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpKubeClient, type KubeTuning } from '../../src/adapters/kube.js';
import { ConfigError, ExitCode, InfrastructureError, WorkFailedError } from '../../src/errors.js';
import { fenceWrites } from '../../src/release/lock.js';
import { AdaptiveLimiter, abortableSleep, backoffMs, kubeRetryTimeoutMs, retryAfterMs } from '../../src/kube/retry.js';
import type { WatchEvent } from '../../src/kube/kube-client.js';
import type { LiveObject } from '../../src/kube/objects.js';
import { recordToSecrets } from '../../src/release/record-secrets.js';
import { SecretDriver } from '../../src/release/secret-driver.js';
import { ReleaseStorage } from '../../src/release/storage.js';
import type { ReleaseRecord } from '../../src/release/release-record.js';

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

interface FakeApi {
  port: number;
  server: Server;
  requests: string[];
  handle: Handler;
  close(): Promise<void>;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const discovery = {
  kind: 'APIResourceList',
  groupVersion: 'v1',
  resources: [
    { name: 'configmaps', kind: 'ConfigMap', namespaced: true },
    { name: 'secrets', kind: 'Secret', namespaced: true },
  ],
};

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function configMap(name: string, rv = '1'): LiveObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default', resourceVersion: rv } };
}

/** An API server on 127.0.0.1 whose handler a test swaps; discovery of v1 is always answered. */
async function fakeApi(port = 0): Promise<FakeApi> {
  const sockets = new Set<Socket>();
  const api: FakeApi = {
    port: 0,
    server: undefined as unknown as Server,
    requests: [],
    handle: (_req, res) => json(res, 404, { kind: 'Status', reason: 'NotFound', message: 'not found' }),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => api.server.close(() => r()));
    },
  };
  api.server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      api.requests.push(`${req.method} ${req.url}`);
      if (req.url === '/api/v1') return json(res, 200, discovery);
      api.handle(req, res, body);
    });
  });
  api.server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => api.server.listen(port, '127.0.0.1', () => r()));
  api.port = (api.server.address() as AddressInfo).port;
  cleanups.push(() => api.close().catch(() => {}));
  return api;
}

async function kubeconfigFor(port: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-kube-retry-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'config');
  await writeFile(
    file,
    `apiVersion: v1
kind: Config
current-context: flaky
clusters: [{ name: flaky, cluster: { server: "http://127.0.0.1:${port}" } }]
users: [{ name: me, user: { token: not-a-real-token } }]
contexts: [{ name: flaky, context: { cluster: flaky, user: me, namespace: default } }]
`,
  );
  return file;
}

async function client(port: number, tuning: Partial<KubeTuning> = {}): Promise<HttpKubeClient> {
  return HttpKubeClient.connect({ kubeconfig: await kubeconfigFor(port), env: process.env, tuning: { random: () => 0, retryTimeoutMs: 10_000, ...tuning } });
}

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('kube client: transient answers are retried', () => {
  it('503 twice, then the object: the read succeeds after two retries', async () => {
    const api = await fakeApi();
    let calls = 0;
    api.handle = (_req, res) => (++calls <= 2 ? json(res, 503, { kind: 'Status', message: 'apiserver is shutting down' }) : json(res, 200, configMap('app')));
    const kube = await client(api.port);
    const got = await kube.get('v1', 'ConfigMap', 'default', 'app');
    expect(got?.metadata.name).toBe('app');
    expect(calls).toBe(3);
    expect(kube.retries).toBe(2);
  });

  it('429 with Retry-After: 1 waits at least a second and halves the requests allowed in flight', async () => {
    const api = await fakeApi();
    let calls = 0;
    api.handle = (_req, res) =>
      ++calls === 1
        ? json(res, 429, { kind: 'Status', reason: 'TooManyRequests', message: 'too many requests' }, { 'retry-after': '1' })
        : json(res, 200, configMap('app'));
    const kube = await client(api.port, { maxParallel: 16 });
    const t0 = Date.now();
    await kube.get('v1', 'ConfigMap', 'default', 'app');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(kube.parallelism.lowest).toBe(8);
  });

  it('a refusal (400, 404, 409, 500) is not retried', async () => {
    const api = await fakeApi();
    let calls = 0;
    api.handle = (_req, res) => {
      calls++;
      json(res, 500, { kind: 'Status', reason: 'InternalError', message: 'boom' });
    };
    const kube = await client(api.port);
    await expect(kube.get('v1', 'ConfigMap', 'default', 'app')).rejects.toMatchObject({ status: 500 });
    expect(calls).toBe(1);
  });

  it('connection refused until the server comes back on its port: the read succeeds', async () => {
    const port = await freePort();
    const api0 = await fakeApi();
    const kube = await client(port, { retryTimeoutMs: 20_000 });
    void api0; // discovery is answered by the server that comes back
    const later = (async () => {
      await new Promise((r) => setTimeout(r, 1500));
      const api = await fakeApi(port);
      api.handle = (_req, res) => json(res, 200, configMap('back'));
    })();
    const got = await kube.get('v1', 'ConfigMap', 'default', 'back');
    await later;
    expect(got?.metadata.name).toBe('back');
    expect(kube.retries).toBeGreaterThan(0);
  });

  it('past the bound: exit 3, one line naming the API server, its context and SKIFF_KUBE_RETRY_TIMEOUT', async () => {
    const port = await freePort();
    const kube = await client(port, { retryTimeoutMs: 1200 });
    const t0 = Date.now();
    const err = (await kube.get('v1', 'ConfigMap', 'default', 'app').catch((e: unknown) => e)) as InfrastructureError;
    expect(err).toBeInstanceOf(InfrastructureError);
    expect(err.exitCode).toBe(ExitCode.infrastructure);
    expect(err.message).toMatch(
      new RegExp(
        `^Kubernetes API http://127\\.0\\.0\\.1:${port} \\(context flaky\\) is unreachable: .*ECONNREFUSED.*; gave up after \\d+ attempts in \\d+s; .*SKIFF_KUBE_RETRY_TIMEOUT`,
      ),
    );
    expect(err.message).not.toContain('\n');
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('a create whose connection broke after it was sent, repeated, finds 409 AlreadyExists: that is the created object', async () => {
    const api = await fakeApi();
    const stored = new Map<string, LiveObject>();
    let posts = 0;
    api.handle = (req, res, body) => {
      if (req.method === 'POST') {
        posts++;
        const obj = JSON.parse(body) as LiveObject;
        if (stored.has(obj.metadata.name)) return json(res, 409, { kind: 'Status', reason: 'AlreadyExists', message: 'already exists' });
        stored.set(obj.metadata.name, { ...obj, metadata: { ...obj.metadata, resourceVersion: '7' } });
        if (posts === 1) return req.socket.destroy(); // the write landed; the answer is lost
        return json(res, 201, stored.get(obj.metadata.name));
      }
      const name = decodeURIComponent(req.url!.split('?')[0]!.split('/').pop()!);
      return stored.has(name) ? json(res, 200, stored.get(name)) : json(res, 404, { kind: 'Status', reason: 'NotFound' });
    };
    const kube = await client(api.port);
    const created = await kube.create(configMap('once'));
    expect(created.metadata.resourceVersion).toBe('7');
    expect(posts).toBe(2);
    expect(stored.size).toBe(1);
  });

  /** An API server holding Secrets whose first POST lands `landed(sent)` and loses the answer, as a dropped connection does. */
  function recordApi(api: FakeApi, landed: (sent: LiveObject) => LiveObject) {
    const stored = new Map<string, LiveObject>();
    let posts = 0;
    api.handle = (req, res, body) => {
      const path = req.url!.split('?')[0]!;
      if (req.method === 'POST') {
        const sent = JSON.parse(body) as LiveObject;
        if (++posts > 1 && stored.has(sent.metadata.name)) return json(res, 409, { kind: 'Status', reason: 'AlreadyExists', message: 'already exists' });
        const obj = posts === 1 ? landed(sent) : sent;
        stored.set(sent.metadata.name, { ...obj, metadata: { ...obj.metadata, resourceVersion: String(posts) } });
        if (posts === 1) return req.socket.destroy();
        return json(res, 201, stored.get(sent.metadata.name));
      }
      if (path.endsWith('/secrets')) return json(res, 200, { kind: 'SecretList', items: [...stored.values()], metadata: { resourceVersion: '1' } });
      const name = decodeURIComponent(path.split('/').pop()!);
      return stored.has(name) ? json(res, 200, stored.get(name)) : json(res, 404, { kind: 'Status', reason: 'NotFound' });
    };
    return { stored, posts: () => posts };
  }

  const revisionOne = (startedAt: string): ReleaseRecord => ({
    name: 'shop-staging',
    namespace: 'default',
    revision: 1,
    status: 'pending-install',
    description: 'install',
    environment: 'staging',
    project: 'shop',
    manifests: [],
    values: {},
    images: {},
    git: { commit: 'c0ffee' },
    deployedBy: { user: 'ci', host: 'runner' },
    startedAt,
  });

  it('a release record whose first create lost its answer while another deploy stored the same revision: the concurrent-deploy error', async () => {
    const api = await fakeApi();
    const theirs = recordToSecrets(revisionOne('2026-01-01T10:00:00.000Z'), 'default')[0]!;
    const server = recordApi(api, () => theirs);
    const storage = new ReleaseStorage(new SecretDriver(await client(api.port), 'default'), 'default', (r) => r);
    await expect(storage.create(revisionOne('2026-01-01T10:00:01.000Z'))).rejects.toThrow(
      'release shop-staging revision 1 already exists: another deploy of this release ran at the same time; run it again',
    );
    expect(server.posts()).toBe(2);
    // The other deploy's record is left as it wrote it.
    expect(server.stored.get(theirs.metadata.name)?.metadata.annotations).toEqual(theirs.metadata.annotations);
  });

  it('a release record whose own create landed though its answer was lost: stored once, no error', async () => {
    const api = await fakeApi();
    const server = recordApi(api, (sent) => sent);
    const storage = new ReleaseStorage(new SecretDriver(await client(api.port), 'default'), 'default', (r) => r);
    await storage.create(revisionOne('2026-01-01T10:00:01.000Z'));
    expect(server.posts()).toBe(2);
    expect(server.stored.size).toBe(1);
    expect((await storage.get('shop-staging', 1))?.startedAt).toBe('2026-01-01T10:00:01.000Z');
  });

  it('a create answered 409 without an earlier lost attempt is still a conflict', async () => {
    const api = await fakeApi();
    api.handle = (_req, res) => json(res, 409, { kind: 'Status', reason: 'AlreadyExists', message: 'already exists' });
    const kube = await client(api.port);
    await expect(kube.create(configMap('taken'))).rejects.toMatchObject({ status: 409, reason: 'AlreadyExists' });
  });
});

describe('kube client: a write fenced by the release lock', () => {
  const lostLock = () =>
    new WorkFailedError('deploy', 'lost the lock of release shop: not renewed for 20s (API server unreachable); stopped, nothing more is applied or pruned');

  for (const [what, write] of [
    ['apply', (k: ReturnType<typeof fenceWrites>) => k.apply(configMap('app'))],
    ['create', (k: ReturnType<typeof fenceWrites>) => k.create(configMap('app'))],
    ['replace', (k: ReturnType<typeof fenceWrites>) => k.replace(configMap('app'))],
    ['delete', (k: ReturnType<typeof fenceWrites>) => k.delete('v1', 'ConfigMap', 'default', 'app')],
  ] as const) {
    it(`${what} retried through 503s stops as the lock is lost: the lost lock's error at once, and no request sent after it`, async () => {
      const api = await fakeApi();
      api.handle = (_req, res) => json(res, 503, { kind: 'Status', message: 'apiserver is shutting down' });
      const lost = new AbortController();
      const kube = fenceWrites(await client(api.port, { retryTimeoutMs: 30_000 }), lost.signal);
      const sent = () => api.requests.filter((r) => !r.endsWith('/api/v1')).length;
      const writing = write(kube).catch((e: unknown) => e);
      while (sent() < 2) await new Promise((r) => setTimeout(r, 20)); // retrying
      const reason = lostLock();
      const t0 = Date.now();
      lost.abort(reason);
      expect(await writing).toBe(reason);
      expect(Date.now() - t0).toBeLessThan(500);
      const before = sent();
      await new Promise((r) => setTimeout(r, 1_500));
      expect(sent()).toBe(before);
    });
  }

  it("the run's own signal (Ctrl-C) stops a fenced write's retries too", async () => {
    const api = await fakeApi();
    api.handle = (_req, res) => json(res, 503, { kind: 'Status', message: 'apiserver is shutting down' });
    const run = new AbortController();
    const kube = fenceWrites(await client(api.port, { retryTimeoutMs: 30_000 }), new AbortController().signal, run.signal);
    const writing = kube.apply(configMap('app')).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 400));
    const t0 = Date.now();
    run.abort(new Error('SIGINT'));
    expect(((await writing) as Error).name).toBe('AbortError');
    expect(Date.now() - t0).toBeLessThan(500);
  });
});

describe('kube client: bounded parallelism that adapts to rate limiting', () => {
  it('2,000 reads against a server that takes 4 at a time and 429s the rest: all succeed, the client backs off', async () => {
    const api = await fakeApi();
    let inFlight = 0;
    let peak = 0;
    let rejected = 0;
    api.handle = (req, res) => {
      if (inFlight >= 4) {
        rejected++;
        return json(res, 429, { kind: 'Status', reason: 'TooManyRequests', message: 'rejected by priority and fairness' }, { 'retry-after': '0' });
      }
      inFlight++;
      peak = Math.max(peak, inFlight);
      setTimeout(() => {
        inFlight--;
        json(res, 200, configMap(req.url!.split('/').pop()!));
      }, 2);
    };
    const kube = await client(api.port, { maxParallel: 16, retryTimeoutMs: 60_000 });
    const names = Array.from({ length: 2000 }, (_, i) => `cm-${i}`);
    const got = await Promise.all(names.map((n) => kube.get('v1', 'ConfigMap', 'default', n)));
    expect(got.map((o) => o?.metadata.name)).toEqual(names);
    expect(peak).toBeLessThanOrEqual(4);
    expect(kube.parallelism.lowest).toBeLessThanOrEqual(4);
    // Backing off means far fewer rejections than requests.
    expect(rejected).toBeLessThan(1000);
  }, 60_000);

  it('AdaptiveLimiter: halves once per window of requests, recovers one slot per `limit` successes and per cooldown', () => {
    let now = 0;
    const l = new AdaptiveLimiter(16, () => now, 1000);
    const first = l.epoch;
    l.throttled(first);
    l.throttled(first); // sent before the decrease: counted once
    expect(l.limit).toBe(8);
    now = 2000;
    l.throttled(l.epoch);
    expect(l.limit).toBe(4);
    for (let i = 0; i < 10; i++) l.succeeded();
    expect(l.limit).toBe(4); // not within the cooldown of the last decrease
    now = 3000;
    for (let i = 0; i < 4; i++) l.succeeded();
    expect(l.limit).toBe(5);
    now = 3500;
    for (let i = 0; i < 10; i++) l.succeeded();
    expect(l.limit).toBe(5);
    now = 4000;
    l.succeeded();
    expect(l.limit).toBe(6);
  });
});

describe('kube client: watches ride through an outage', () => {
  it('resumes from the last resourceVersion after a drop and refused connections, and re-lists after 410 Gone', async () => {
    const port = await freePort();
    let api = await fakeApi(port);
    const watchQueries: string[] = [];
    let lists = 0;
    let phase: 'first' | 'gone' | 'after' = 'first';
    const handler: Handler = (req, res) => {
      const url = new URL(req.url!, 'http://x');
      if (url.searchParams.get('watch') !== '1') {
        lists++;
        return json(res, 200, {
          kind: 'ConfigMapList',
          metadata: { resourceVersion: lists === 1 ? '10' : '50' },
          items: [configMap('a', lists === 1 ? '10' : '50')],
        });
      }
      watchQueries.push(url.searchParams.get('resourceVersion') ?? '');
      res.writeHead(200, { 'content-type': 'application/json' });
      if (phase === 'first') {
        res.write(`${JSON.stringify({ type: 'MODIFIED', object: configMap('a', '11') })}\n`);
        // The API server dies: the connection drops, then nothing listens for a while.
        setTimeout(() => {
          phase = 'gone';
          void api.close().then(async () => {
            await new Promise((r) => setTimeout(r, 1200));
            api = await fakeApi(port);
            api.handle = handler;
          });
        }, 50);
        return;
      }
      if (phase === 'gone') {
        phase = 'after';
        res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } })}\n`);
        return;
      }
      res.write(`${JSON.stringify({ type: 'ADDED', object: configMap('b', '51') })}\n`);
    };
    api.handle = handler;
    const kube = await client(port, { retryTimeoutMs: 20_000 });
    const events: string[] = [];
    const ac = new AbortController();
    const watching = kube.watch(
      'v1',
      'ConfigMap',
      'default',
      {},
      {
        signal: ac.signal,
        onEvent: (ev: WatchEvent) => {
          events.push(`${ev.type} ${ev.object.metadata.name}@${String(ev.object.metadata.resourceVersion)}`);
          if (ev.object.metadata.name === 'b') ac.abort();
        },
      },
    );
    await watching;
    expect(watchQueries[0]).toBe('10');
    expect(watchQueries[1]).toBe('11'); // resumed where the dropped watch stopped
    expect(lists).toBe(2); // 410 Gone: listed again
    expect(watchQueries[2]).toBe('50');
    expect(events).toEqual(['ADDED a@10', 'MODIFIED a@11', 'ADDED a@50', 'ADDED b@51']);
  }, 30_000);

  it('a watch that cannot reconnect within the bound fails with exit 3 naming the server', async () => {
    const port = await freePort();
    const api = await fakeApi(port);
    api.handle = (req, res) => {
      if (!req.url!.includes('watch=1')) return json(res, 200, { kind: 'ConfigMapList', metadata: { resourceVersion: '1' }, items: [] });
      res.writeHead(200);
      setTimeout(() => void api.close(), 20);
    };
    const kube = await client(port, { retryTimeoutMs: 1000 });
    const ac = new AbortController();
    const err = (await kube.watch('v1', 'ConfigMap', 'default', {}, { signal: ac.signal, onEvent: () => {} }).catch((e: unknown) => e)) as InfrastructureError;
    expect(err).toBeInstanceOf(InfrastructureError);
    expect(err.message).toMatch(
      new RegExp(`^Kubernetes API http://127\\.0\\.0\\.1:${port} \\(context flaky\\): the watch of ConfigMap could not be resumed for 1s`),
    );
  }, 15_000);
});

describe('retry policy', () => {
  it('SKIFF_KUBE_RETRY_TIMEOUT: seconds, default 60, a bad value is bad input', () => {
    expect(kubeRetryTimeoutMs({})).toBe(60_000);
    expect(kubeRetryTimeoutMs({ SKIFF_KUBE_RETRY_TIMEOUT: '5' })).toBe(5000);
    expect(kubeRetryTimeoutMs({ SKIFF_KUBE_RETRY_TIMEOUT: '0' })).toBe(0);
    expect(() => kubeRetryTimeoutMs({ SKIFF_KUBE_RETRY_TIMEOUT: 'soon' })).toThrow(ConfigError);
    expect(() => kubeRetryTimeoutMs({ SKIFF_KUBE_RETRY_TIMEOUT: '-1' })).toThrow(/between 0 and 86400/);
  });

  it('Retry-After: seconds or an HTTP date, capped', () => {
    expect(retryAfterMs('3', 0)).toBe(3000);
    expect(retryAfterMs(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(retryAfterMs('99999', 0)).toBe(60_000);
    expect(retryAfterMs('soon', 0)).toBeUndefined();
    expect(retryAfterMs(undefined, 0)).toBeUndefined();
  });

  it('backoff grows exponentially with jitter and is capped', () => {
    expect(backoffMs(0, () => 0)).toBe(125);
    expect(backoffMs(0, () => 1)).toBe(250);
    expect(backoffMs(3, () => 1)).toBe(2000);
    expect(backoffMs(30, () => 1)).toBe(8000);
  });

  it('abortableSleep leaves no listener on the signal, however many times it waits', async () => {
    const ac = new AbortController();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      for (let i = 0; i < 50; i++) await abortableSleep(1, ac.signal);
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
  });
});
