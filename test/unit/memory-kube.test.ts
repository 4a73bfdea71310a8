import { describe, expect, it } from 'vitest';
import { defaultPolicy, verdict } from '../../src/kinds/readiness.js';
import { KubeApiError, type WatchEvent } from '../../src/kube/kube-client.js';
import type { KubeObject, LiveObject } from '../../src/kube/objects.js';
import { failedJobStatus, MemoryKube, readyStatus } from '../helpers/memory-kube.js';

function configMap(name: string, namespace: string | undefined, labels: Record<string, string> = {}, data: Record<string, string> = { a: '1' }): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, ...(namespace ? { namespace } : {}), labels }, data };
}

function deployment(name: string, namespace: string, image = 'app:1', replicas = 2): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels: { app: name } },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'app', image }] } },
    },
  };
}

function job(name: string, namespace: string, command = 'true'): KubeObject {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace },
    spec: {
      backoffLimit: 0,
      template: { spec: { restartPolicy: 'Never', containers: [{ name: 'migrate', image: 'app:1', command: ['sh', '-c', command] }] } },
    },
  };
}

async function apiError(p: Promise<unknown>): Promise<KubeApiError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(KubeApiError);
  return e as KubeApiError;
}

const names = (items: LiveObject[]) => items.map((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`);
const tick = () => new Promise<void>((r) => setImmediate(r));

describe('MemoryKube: create, get, list', () => {
  it('creates objects with server-set metadata and reads them back', async () => {
    const kube = new MemoryKube();
    const created = await kube.create(configMap('a', 'shop'));
    expect(created.metadata).toMatchObject({ name: 'a', namespace: 'shop', generation: 1, resourceVersion: '1' });
    expect(created.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.metadata.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(await kube.get('v1', 'ConfigMap', 'shop', 'a')).toEqual(created);
    expect(await kube.get('v1', 'ConfigMap', 'other', 'a')).toBeUndefined();

    // The default namespace fills in a missing one; cluster-scoped kinds have none.
    await kube.create(configMap('b', undefined));
    expect((await kube.get('v1', 'ConfigMap', undefined, 'b'))?.metadata.namespace).toBe('default');
    const ns = await kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', namespace: 'ignored' } });
    expect(ns.metadata.namespace).toBeUndefined();
    expect(ns.status).toEqual({ phase: 'Active' });
    expect(await kube.get('v1', 'Namespace', 'whatever', 'shop')).toBeDefined();

    const e = await apiError(kube.create(configMap('a', 'shop')));
    expect(e).toMatchObject({ status: 409, reason: 'AlreadyExists' });
    expect(e.message).toBe('configmaps "a" already exists');
  });

  it('lists by namespace (all when undefined), label selector and field selector, sorted', async () => {
    const kube = new MemoryKube();
    await kube.create(configMap('z', 'shop', { owner: 'skiff', name: 'web' }));
    await kube.create(configMap('y', 'shop', { owner: 'skiff', name: 'api' }));
    await kube.create(configMap('x', 'blog', { owner: 'skiff', name: 'web' }));
    await kube.create(configMap('w', 'blog', { owner: 'someone' }));
    await kube.create(configMap('v', 'blog', {}));

    expect(names((await kube.list('v1', 'ConfigMap', 'shop')).items)).toEqual(['shop/y', 'shop/z']);
    expect(names((await kube.list('v1', 'ConfigMap', undefined)).items)).toEqual(['blog/v', 'blog/w', 'blog/x', 'shop/y', 'shop/z']);
    expect(names((await kube.list('v1', 'ConfigMap', undefined, { labelSelector: 'owner=skiff' })).items)).toEqual(['blog/x', 'shop/y', 'shop/z']);
    expect(names((await kube.list('v1', 'ConfigMap', undefined, { labelSelector: 'owner=skiff,name=web' })).items)).toEqual(['blog/x', 'shop/z']);
    expect(names((await kube.list('v1', 'ConfigMap', 'blog', { labelSelector: 'owner' })).items)).toEqual(['blog/w', 'blog/x']);
    expect(names((await kube.list('v1', 'ConfigMap', undefined, { labelSelector: '!owner' })).items)).toEqual(['blog/v']);
    expect(names((await kube.list('v1', 'ConfigMap', undefined, { labelSelector: 'name in (api, web),owner!=x' })).items)).toEqual([
      'blog/x',
      'shop/y',
      'shop/z',
    ]);
    expect(names((await kube.list('v1', 'ConfigMap', undefined, { fieldSelector: 'metadata.name=y' })).items)).toEqual(['shop/y']);
    expect(names((await kube.list('v1', 'ConfigMap', 'blog', { labelSelector: 'owner=skiff', fieldSelector: 'metadata.name=x' })).items)).toEqual(['blog/x']);
    // Another kind, or another group, is another collection.
    expect((await kube.list('v1', 'Secret', undefined)).items).toEqual([]);
    expect((await kube.list('apps/v1', 'ConfigMap', undefined)).items).toEqual([]);

    const list = await kube.list('v1', 'ConfigMap', undefined);
    expect(list.resourceVersion).toBe('5');
    expect(await apiError(kube.list('v1', 'ConfigMap', undefined, { fieldSelector: 'spec.foo=1' }))).toMatchObject({ status: 400, reason: 'BadRequest' });

    const byNs = await kube.namespacesWith('v1', 'ConfigMap', 'owner=skiff');
    expect([...byNs.keys()].sort()).toEqual(['blog', 'shop']);
    expect(names(byNs.get('shop')!)).toEqual(['shop/y', 'shop/z']);
  });
});

describe('MemoryKube: replace and delete', () => {
  it('replaces conditionally on resourceVersion, keeps uid and status', async () => {
    const kube = new MemoryKube();
    const lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'skiff-lock-web', namespace: 'shop' },
      spec: { holderIdentity: 'a' },
    };
    expect(await apiError(kube.replace(lease))).toMatchObject({
      status: 404,
      reason: 'NotFound',
      message: 'leases.coordination.k8s.io "skiff-lock-web" not found',
    });

    const v1 = await kube.create(lease);
    const v2 = await kube.replace({ ...lease, metadata: { ...lease.metadata, resourceVersion: v1.metadata.resourceVersion }, spec: { holderIdentity: 'b' } });
    expect(v2.metadata.uid).toBe(v1.metadata.uid);
    expect(Number(v2.metadata.resourceVersion)).toBeGreaterThan(Number(v1.metadata.resourceVersion));
    expect(v2.metadata.generation).toBe(2);

    // A second taker still holding v1's resourceVersion loses.
    const e = await apiError(
      kube.replace({ ...lease, metadata: { ...lease.metadata, resourceVersion: v1.metadata.resourceVersion }, spec: { holderIdentity: 'c' } }),
    );
    expect(e).toMatchObject({ status: 409, reason: 'Conflict' });
    expect((await kube.get('coordination.k8s.io/v1', 'Lease', 'shop', 'skiff-lock-web'))?.spec.holderIdentity).toBe('b');

    // Without a resourceVersion a replace is unconditional; status survives it.
    await kube.create(deployment('web', 'shop'));
    kube.setStatus('apps/v1', 'Deployment', 'shop', 'web', { replicas: 2 });
    const replaced = await kube.replace({ ...deployment('web', 'shop', 'app:2'), status: { replicas: 99 } });
    expect(replaced.status).toEqual({ replicas: 2 });
    expect(replaced.spec.template.spec.containers[0].image).toBe('app:2');
  });

  it('deletes an object, what it owns and a namespace with its contents', async () => {
    const kube = new MemoryKube();
    await kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    const j = await kube.create(job('migrate', 'shop'));
    kube.seed({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'migrate-abc', namespace: 'shop', ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'migrate', uid: j.metadata.uid }] },
    });
    await kube.create(configMap('keep', 'shop'));
    await kube.create(configMap('elsewhere', 'blog'));

    expect(await kube.delete('batch/v1', 'Job', 'shop', 'migrate')).toBe(true);
    expect(await kube.delete('batch/v1', 'Job', 'shop', 'migrate')).toBe(false);
    expect(kube.objects('Pod')).toEqual([]);
    expect(names(kube.objects('ConfigMap'))).toEqual(['shop/keep', 'blog/elsewhere']);

    expect(await kube.delete('v1', 'Namespace', undefined, 'shop')).toBe(true);
    expect(names(kube.objects())).toEqual(['blog/elsewhere']);
  });
});

describe('MemoryKube: apply', () => {
  it('creates, then replaces all but status, bumping generation only for spec changes', async () => {
    const kube = new MemoryKube();
    const first = await kube.apply(deployment('web', 'shop'));
    expect(first.metadata).toMatchObject({ generation: 1, resourceVersion: '1' });
    expect(first.status).toBeUndefined();
    kube.setStatus('apps/v1', 'Deployment', 'shop', 'web', { observedGeneration: 1 });

    // The same object again changes nothing, as on a real server.
    const same = await kube.apply(deployment('web', 'shop'));
    expect(same.metadata.resourceVersion).toBe('2');

    const labelled = await kube.apply({ ...deployment('web', 'shop'), metadata: { name: 'web', namespace: 'shop', labels: { app: 'web', tier: 'front' } } });
    expect(labelled.metadata).toMatchObject({
      generation: 1,
      resourceVersion: '3',
      uid: first.metadata.uid,
      creationTimestamp: first.metadata.creationTimestamp,
    });
    expect(labelled.status).toEqual({ observedGeneration: 1 });

    const second = await kube.apply(deployment('web', 'shop', 'app:2'));
    expect(second.metadata).toMatchObject({ generation: 2, resourceVersion: '4' });
    expect(second.metadata.labels).toEqual({ app: 'web' });
    expect(second.status).toEqual({ observedGeneration: 1 });

    // A resourceVersion in the applied object makes it conditional.
    expect(await apiError(kube.apply({ ...deployment('web', 'shop'), metadata: { name: 'web', namespace: 'shop', resourceVersion: '1' } }))).toMatchObject({
      status: 409,
      reason: 'Conflict',
    });
  });

  it('stores nothing on a dry run and records every call in order', async () => {
    const kube = new MemoryKube();
    const dry = await kube.apply(deployment('web', 'shop'), { dryRun: true });
    expect(dry.metadata).toMatchObject({ name: 'web', namespace: 'shop', generation: 1 });
    expect(kube.objects()).toEqual([]);
    expect(await kube.get('apps/v1', 'Deployment', 'shop', 'web')).toBeUndefined();

    await kube.apply(configMap('cfg', 'shop'));
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    await kube.list('v1', 'Pod', undefined, { labelSelector: 'app=web' });
    expect(kube.calls).toEqual([
      { verb: 'apply', kind: 'Deployment', namespace: 'shop', name: 'web', dryRun: true },
      { verb: 'get', kind: 'Deployment', namespace: 'shop', name: 'web' },
      { verb: 'apply', kind: 'ConfigMap', namespace: 'shop', name: 'cfg' },
      { verb: 'apply', kind: 'Namespace', name: 'shop' },
      { verb: 'list', kind: 'Pod' },
    ]);
    expect(kube.writes().map((c) => c.kind)).toEqual(['ConfigMap', 'Namespace']);
  });

  it('refuses what reject() names, on dry run or for real as its predicate decides', async () => {
    const kube = new MemoryKube();
    const quota = new KubeApiError(403, 'Forbidden', 'exceeded quota: compute');
    const lift = kube.reject((o, { dryRun }) => o.kind === 'Deployment' && !dryRun, quota);
    kube.reject((o) => o.metadata.name === 'bad', new KubeApiError(422, 'Invalid', 'ConfigMap "bad" is invalid', [{ field: 'data', message: 'nope' }]));

    await kube.apply(deployment('web', 'shop'), { dryRun: true });
    await expect(kube.apply(deployment('web', 'shop'))).rejects.toBe(quota);
    expect(await apiError(kube.apply(configMap('bad', 'shop'), { dryRun: true }))).toMatchObject({ status: 422, causes: [{ field: 'data', message: 'nope' }] });
    expect(kube.objects()).toEqual([]);
    expect(kube.calls.map((c) => c.verb)).toEqual(['apply', 'apply', 'apply']);

    lift();
    await kube.apply(deployment('web', 'shop'));
    expect(kube.objects('Deployment')).toHaveLength(1);
  });

  it('refuses invalid objects with 422 and causes', async () => {
    const kube = new MemoryKube();
    const badName = await apiError(kube.apply(configMap('Web_Config', 'shop')));
    expect(badName).toMatchObject({ status: 422, reason: 'Invalid', causes: [{ field: 'metadata.name' }] });
    expect(badName.message).toMatch(/^ConfigMap "Web_Config" is invalid: metadata.name: Invalid value/);

    const longLabel = await apiError(kube.apply(configMap('cfg', 'shop', { 'skiff.io/release': 'x'.repeat(64) })));
    expect(longLabel.causes).toEqual([
      expect.objectContaining({ field: 'metadata.labels', message: expect.stringContaining('must be no more than 63 characters') }),
    ]);

    const big = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'rec', namespace: 'shop' },
      data: { release: Buffer.alloc(1024 * 1024 + 1).toString('base64') },
    };
    expect(await apiError(kube.create(big))).toMatchObject({ status: 422, causes: [{ field: 'data' }] });

    await kube.apply(job('migrate', 'shop'));
    const immutable = await apiError(kube.apply(job('migrate', 'shop', 'false')));
    expect(immutable.causes).toEqual([expect.objectContaining({ field: 'spec.template', message: expect.stringContaining('field is immutable') })]);
    expect(kube.objects()).toHaveLength(1);
  });

  it('folds Secret stringData into base64 data', async () => {
    const kube = new MemoryKube();
    const s = await kube.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'shop' }, stringData: { password: 'hunter2' } });
    expect(s).toMatchObject({ type: 'Opaque', data: { password: Buffer.from('hunter2').toString('base64') } });
    expect(s.stringData).toBeUndefined();
  });

  it('refuses writes into a missing namespace when asked to', async () => {
    const kube = new MemoryKube({ requireNamespaces: true });
    expect(await apiError(kube.apply(configMap('cfg', 'shop')))).toMatchObject({ status: 404, reason: 'NotFound', message: 'namespaces "shop" not found' });
    await kube.apply(configMap('cfg', 'default'));
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    await kube.apply(configMap('cfg', 'shop'));
    expect(kube.objects('ConfigMap')).toHaveLength(2);
  });
});

describe('MemoryKube: watch', () => {
  it('replays the list, reports synced, then delivers later changes asynchronously until aborted', async () => {
    const kube = new MemoryKube();
    await kube.create(configMap('a', 'shop', { app: 'web' }));
    await kube.create(configMap('other-ns', 'blog', { app: 'web' }));
    const seen: string[] = [];
    const ac = new AbortController();
    let synced = false;
    const done = kube.watch(
      'v1',
      'ConfigMap',
      'shop',
      { labelSelector: 'app=web' },
      {
        onEvent: (ev: WatchEvent) => seen.push(`${ev.type} ${ev.object.metadata.name} ${ev.object.data?.a ?? ''}`),
        signal: ac.signal,
        onSynced: () => {
          synced = true;
          seen.push('synced');
        },
      },
    );
    expect(seen).toEqual([]);
    expect(kube.activeWatches).toBe(1);

    const creating = kube.create(configMap('b', 'shop', { app: 'web' }));
    expect(seen).toEqual([]); // not inside the mutating call
    await creating;
    await kube.apply(configMap('b', 'shop', { app: 'web' }, { a: '2' }));
    await kube.apply(configMap('b', 'shop', { app: 'api' }, { a: '2' })); // leaves the selection
    await kube.apply(configMap('b', 'shop', { app: 'web' }, { a: '3' })); // enters it again
    await kube.create(configMap('c', 'shop', { app: 'api' })); // never matches
    await kube.create(configMap('d', 'blog', { app: 'web' })); // other namespace
    await kube.delete('v1', 'ConfigMap', 'shop', 'a');
    await tick();
    expect(synced).toBe(true);
    expect(seen).toEqual(['ADDED a 1', 'synced', 'ADDED b 1', 'MODIFIED b 2', 'DELETED b 2', 'ADDED b 3', 'DELETED a 1']);

    ac.abort();
    await done;
    expect(kube.activeWatches).toBe(0);
    await kube.delete('v1', 'ConfigMap', 'shop', 'b');
    await tick();
    expect(seen).toHaveLength(7);
  });

  it('watches all namespaces and status changes; resolves at once when already aborted', async () => {
    const kube = new MemoryKube();
    const seen: WatchEvent[] = [];
    const ac = new AbortController();
    const done = kube.watch('apps/v1', 'Deployment', undefined, {}, { onEvent: (ev) => seen.push(ev), signal: ac.signal });
    await kube.apply(deployment('web', 'shop'));
    await kube.apply(deployment('web', 'blog'));
    kube.setStatus('apps/v1', 'Deployment', 'shop', 'web', { observedGeneration: 1 });
    await tick();
    expect(seen.map((e) => `${e.type} ${e.object.metadata.namespace}`)).toEqual(['ADDED shop', 'ADDED blog', 'MODIFIED shop']);
    expect(seen[2]?.object.status).toEqual({ observedGeneration: 1 });
    ac.abort();
    await done;

    const aborted = AbortSignal.abort();
    let called = false;
    await kube.watch('apps/v1', 'Deployment', undefined, {}, { onEvent: () => (called = true), signal: aborted, onSynced: () => (called = true) });
    await tick();
    expect(called).toBe(false);
  });

  it('ends the watch with the error a callback throws', async () => {
    const kube = new MemoryKube();
    await kube.create(configMap('a', 'shop'));
    const boom = new Error('boom');
    await expect(
      kube.watch(
        'v1',
        'ConfigMap',
        'shop',
        {},
        {
          onEvent: () => {
            throw boom;
          },
          signal: new AbortController().signal,
        },
      ),
    ).rejects.toBe(boom);
    expect(kube.activeWatches).toBe(0);
  });
});

describe('MemoryKube: scripting readiness', () => {
  it('onApply + readyStatus make a Deployment and a Job ready in the eyes of verdict()', async () => {
    const kube = new MemoryKube();
    const events: string[] = [];
    const ac = new AbortController();
    const watching = kube.watch(
      'apps/v1',
      'Deployment',
      'shop',
      {},
      { onEvent: (ev) => events.push(`${ev.type} ${ev.object.status?.readyReplicas ?? '-'}`), signal: ac.signal },
    );
    kube.onApply((o) => {
      o.status = readyStatus(o);
    });

    const applied = await kube.apply(deployment('web', 'shop', 'app:1', 3));
    expect(applied.status).toBeUndefined(); // what the apply itself returned: the controller has not run yet
    const live = (await kube.get('apps/v1', 'Deployment', 'shop', 'web'))!;
    expect(live.status).toMatchObject({ observedGeneration: 1, replicas: 3, updatedReplicas: 3, availableReplicas: 3, readyReplicas: 3 });
    expect(verdict(live, { pods: [] }, defaultPolicy, new Date()).state).toBe('ready');

    // A new spec is judged on its new generation.
    await kube.apply(deployment('web', 'shop', 'app:2', 3));
    const live2 = (await kube.get('apps/v1', 'Deployment', 'shop', 'web'))!;
    expect(live2.metadata.generation).toBe(2);
    expect(live2.status.observedGeneration).toBe(2);
    expect(verdict(live2, { pods: [] }, defaultPolicy, new Date()).state).toBe('ready');

    await kube.apply(job('migrate', 'shop'));
    const j = (await kube.get('batch/v1', 'Job', 'shop', 'migrate'))!;
    expect(verdict(j, { pods: [] }, defaultPolicy, new Date())).toMatchObject({ state: 'ready' });

    await tick();
    expect(events).toEqual(['ADDED -', 'MODIFIED 3', 'MODIFIED 3', 'MODIFIED 3']);
    ac.abort();
    await watching;
  });

  it('readyStatus covers the other tracked kinds, failedJobStatus fails a Job', () => {
    const now = new Date();
    const obj = (kind: string, apiVersion: string, spec: Record<string, unknown> = {}): LiveObject => ({
      apiVersion,
      kind,
      metadata: { name: 'x', namespace: 'shop', generation: 3, uid: 'u1' },
      spec,
    });
    for (const o of [
      obj('StatefulSet', 'apps/v1', { replicas: 2 }),
      obj('DaemonSet', 'apps/v1'),
      obj('Pod', 'v1', { containers: [{ name: 'app', image: 'app:1' }] }),
      obj('PersistentVolumeClaim', 'v1', { resources: { requests: { storage: '5Gi' } } }),
    ]) {
      expect(verdict({ ...o, status: readyStatus(o) }, { pods: [] }, defaultPolicy, now).state, o.kind).toBe('ready');
    }
    const j = obj('Job', 'batch/v1');
    expect(verdict({ ...j, status: failedJobStatus() }, { pods: [] }, defaultPolicy, now)).toMatchObject({
      state: 'failed',
      problem: { reason: 'BackoffLimitExceeded' },
    });
  });

  it('a hook can fail a Job; setStatus on a missing object is a 404', async () => {
    const kube = new MemoryKube();
    kube.onApply((o) => {
      if (o.kind === 'Job') kube.setStatus(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name, failedJobStatus());
    });
    await kube.apply(job('migrate', 'shop'));
    expect(verdict(kube.object('Job', 'shop', 'migrate')!, { pods: [] }, defaultPolicy, new Date()).state).toBe('failed');
    expect(() => kube.setStatus('batch/v1', 'Job', 'shop', 'nope', {})).toThrow(KubeApiError);
  });
});

describe('MemoryKube: logs and injected failures', () => {
  it('returns registered log text, tailed', async () => {
    const kube = new MemoryKube();
    kube.setLogs('shop', 'migrate-abc', 'migrate', 'one\ntwo\nthree\n');
    kube.setLogs('shop', 'migrate-abc', 'migrate', 'crashed\n', { previous: true });
    expect(await kube.logs('shop', 'migrate-abc', 'migrate')).toBe('one\ntwo\nthree\n');
    expect(await kube.logs('shop', 'migrate-abc', 'migrate', { tailLines: 2 })).toBe('two\nthree\n');
    expect(await kube.logs('shop', 'migrate-abc', 'migrate', { previous: true })).toBe('crashed\n');
    expect(await kube.logs('shop', 'migrate-abc', 'other')).toBe('');
  });

  it('rejectRequest fails any verb', async () => {
    const kube = new MemoryKube();
    const down = new Error('connect ECONNREFUSED');
    const lift = kube.rejectRequest((c) => c.verb === 'create' && c.kind === 'Secret', down);
    await expect(kube.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'shop' } })).rejects.toBe(down);
    await kube.create(configMap('cfg', 'shop'));
    lift();
    await kube.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'shop' } });
    expect(names(kube.objects())).toEqual(['shop/cfg', 'shop/s']);
  });
});
