// Tracking at scale, without a cluster: failing pods grouped by cause, the
// progress a large release prints, watches scoped by label selectors, and the
// slimmed pods the tracker keeps. The real 1,500- and 15,000-pod runs are
// test/integration/scale.test.ts and bench/p10-scale.mjs, bench/p11-scale.mjs.
import { describe, expect, it } from 'vitest';
import { formatDiagnosis } from '../../src/cli/format.js';
import type { Reporter, RolloutProgress } from '../../src/context.js';
import { childSelectors } from '../../src/kinds/child-selectors.js';
import { slimPod } from '../../src/kinds/pod.js';
import { formatProblemGroup, groupProblems, type ObjectPodProblem } from '../../src/kinds/problem-groups.js';
import { defaultPolicy, formatRolloutSummary, verdict, workloadCounts } from '../../src/kinds/readiness.js';
import type { ListQuery, WatchEvent, Watcher } from '../../src/kube/kube-client.js';
import { RELEASE_LABEL, type KubeObject, type LiveObject } from '../../src/kube/objects.js';
import { trackRollout } from '../../src/stages/track.js';
import { MemoryKube } from '../helpers/memory-kube.js';

const NS = 'shop';

describe('groupProblems', () => {
  const crash = (object: string, pod: string): ObjectPodProblem => ({
    object,
    pod,
    container: 'app',
    reason: 'CrashLoopBackOff',
    exitCode: 1,
    restarts: 1,
    // The kubelet's message names the pod and its UID: they must not split the group.
    message: `back-off 10s restarting failed container=app pod=${pod}_shop(0c4f6c1e-8a1d-4f0e-9a55-${pod.length.toString().padStart(12, '0')})`,
  });
  const problems: ObjectPodProblem[] = [
    ...Array.from({ length: 12 }, (_, i) => crash(`Deployment/web-${i % 4}`, `web-${i % 4}-pod${i}`)),
    { object: 'Deployment/web-2', pod: 'web-2-podx', container: 'app', reason: 'ImagePullBackOff', message: 'Back-off pulling image "r/app:nope"' },
    { object: 'Deployment/web-3', pod: 'web-3-pody', container: 'app', reason: 'ImagePullBackOff', message: 'Back-off pulling image "r/app:nope"' },
    { object: 'Deployment/web-3', pod: 'web-3-podz', container: 'sidecar', reason: 'CrashLoopBackOff', exitCode: 137, message: 'OOM' },
  ];

  it('folds pods failing the same way into one group with a count, its objects and a few examples', () => {
    const groups = groupProblems(problems);
    expect(groups.map((g) => [g.reason, g.container, g.exitCode, g.count])).toEqual([
      ['CrashLoopBackOff', 'app', 1, 12],
      ['ImagePullBackOff', 'app', undefined, 2],
      ['CrashLoopBackOff', 'sidecar', 137, 1],
    ]);
    expect(groups[0]).toMatchObject({
      objects: ['Deployment/web-0', 'Deployment/web-1', 'Deployment/web-2', 'Deployment/web-3'],
      examples: ['web-0-pod0', 'web-1-pod1', 'web-2-pod2'],
      message: 'back-off 10s restarting failed container=app pod=<pod>_shop(<uid>)',
    });
  });

  it('prints each group as one line', () => {
    const [crashes, pulls, oom] = groupProblems(problems);
    expect(formatProblemGroup(crashes!)).toBe(
      '12 pods of 4 objects: Deployment/web-0, Deployment/web-1, Deployment/web-2, …: CrashLoopBackOff in container app, exit code 1: back-off 10s restarting failed container=app pod=<pod>_shop(<uid>); e.g. web-0-pod0, web-1-pod1, web-2-pod2',
    );
    expect(formatProblemGroup(pulls!)).toBe(
      '2 pods of 2 objects: Deployment/web-2, Deployment/web-3: ImagePullBackOff in container app: Back-off pulling image "r/app:nope"; e.g. web-2-podx, web-3-pody',
    );
    expect(formatProblemGroup(oom!)).toBe('1 pod of Deployment/web-3: CrashLoopBackOff in container sidecar, exit code 137: OOM; e.g. web-3-podz');
  });

  it('a diagnosis lists the groups, not the pods', () => {
    const text = formatDiagnosis({
      object: 'Deployment/web-0',
      pod: 'web-0-pod0',
      container: 'app',
      reason: 'CrashLoopBackOff',
      exitCode: 1,
      restarts: 1,
      events: [],
      logs: [],
      groups: groupProblems(problems),
    });
    expect(text.split('\n')).toEqual([
      'Deployment/web-0 pod web-0-pod0 container app: CrashLoopBackOff (exit code 1), 1 restarts',
      '  failing in the release: 15 pods, by cause:',
      expect.stringMatching(/^ {4}12 pods of 4 objects: .*CrashLoopBackOff in container app, exit code 1/),
      expect.stringMatching(/^ {4}2 pods of 2 objects: .*ImagePullBackOff/),
      expect.stringMatching(/^ {4}1 pod of Deployment\/web-3: CrashLoopBackOff in container sidecar, exit code 137/),
    ]);
  });
});

describe('childSelectors', () => {
  const dep = (name: string, matchLabels: Record<string, string>, extra: Record<string, unknown> = {}): LiveObject => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: { selector: { matchLabels, ...extra } },
  });

  it('folds 50 workloads sharing a label key into one set-based selector', () => {
    const workloads = Array.from({ length: 50 }, (_, i) => dep(`web-${i}`, { app: `web-${i}`, tier: 'front' }));
    const [selector, ...rest] = childSelectors(workloads)!;
    expect(rest).toEqual([]);
    expect(selector).toMatch(/^app in \(web-0,web-1,web-10,.*,web-9\)$/);
    expect(selector!.split(',')).toHaveLength(50);
  });

  it("uses a single workload's own selector, and a Job's job-name", () => {
    expect(childSelectors([dep('web', { app: 'web', tier: 'front' })])).toEqual(['app=web,tier=front']);
    expect(childSelectors([{ apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'migrate' } }])).toEqual(['job-name=migrate']);
    expect(childSelectors([dep('a', { app: 'a' }), dep('b', { name: 'b' })])).toEqual(['app=a', 'name=b']);
  });

  it('gives up (the caller watches the namespace) on matchExpressions or too many watches', () => {
    expect(childSelectors([dep('web', { app: 'web' }, { matchExpressions: [{ key: 'x', operator: 'Exists' }] })])).toBeUndefined();
    expect(childSelectors(['a', 'b', 'c', 'd', 'e'].map((k) => dep(k, { [k]: 'x' })))).toBeUndefined();
  });
});

describe('slimPod', () => {
  it('keeps what readiness reads and drops the rest', () => {
    const full: LiveObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'web-1',
        namespace: NS,
        uid: 'p1',
        labels: { app: 'web', 'pod-template-hash': 'abc' },
        annotations: { big: 'x'.repeat(10_000) },
        managedFields: [{ manager: 'kubelet', fieldsV1: { 'f:status': {} } }],
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-abc', uid: 'rs1', controller: true }],
      },
      spec: { containers: [{ name: 'web', image: 'r/app:1', env: [{ name: 'A', value: 'x'.repeat(5_000) }] }], volumes: [{ name: 'v' }] },
      status: {
        phase: 'Running',
        conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: '2026-01-01T00:00:00Z' }],
        containerStatuses: [
          {
            name: 'web',
            image: 'r/app:1',
            imageID: 'sha256:x',
            restartCount: 2,
            state: { waiting: { reason: 'CrashLoopBackOff' } },
            lastState: { terminated: { exitCode: 3 } },
          },
        ],
      },
    };
    const slim = slimPod(full);
    expect(JSON.stringify(slim).length).toBeLessThan(JSON.stringify(full).length / 20);
    expect(slim.metadata.annotations).toBeUndefined();
    expect(slim.metadata.managedFields).toBeUndefined();
    expect(slim.metadata.ownerReferences).toEqual([{ kind: 'ReplicaSet', name: 'web-abc', uid: 'rs1', controller: true }]);
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', generation: 1 },
      spec: { replicas: 1 },
      status: { observedGeneration: 1 },
    };
    const now = new Date('2026-01-01T00:01:00Z');
    expect(verdict(deployment as LiveObject, { pods: [slim] }, defaultPolicy, now)).toEqual(
      verdict(deployment as LiveObject, { pods: [full] }, defaultPolicy, now),
    );
  });
});

describe('workload summaries', () => {
  it('counts ready and updated replicas of a workload, and sums a release in one line', () => {
    const d = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'w' },
      spec: { replicas: 30 },
      status: { readyReplicas: 12, updatedReplicas: 30 },
    };
    expect(workloadCounts(d as LiveObject)).toEqual({ want: 30, ready: 12, updated: 30 });
    expect(workloadCounts({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' } })).toBeUndefined();
    expect(formatRolloutSummary({ ready: 37, total: 50 }, { want: 1500, ready: 1312, updated: 1500 })).toBe(
      '37/50 objects ready; pods 1312/1500 ready, 1500/1500 updated',
    );
  });
});

/** A reporter that keeps every line. */
function recorder(): Reporter & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`info: ${m}`),
    warn: (m) => lines.push(`warn: ${m}`),
    log: (s, l) => lines.push(`log: ${s}: ${l}`),
    status: (s, st, d) => lines.push(`${s}: ${st}${d ? ` (${d})` : ''}`),
    debug: () => {},
    section: () => () => {},
  };
}

/** MemoryKube that records the query of every watch. */
class QueryRecordingKube extends MemoryKube {
  readonly watchQueries: Array<{ kind: string; query: ListQuery }> = [];
  override watch(apiVersion: string, kind: string, namespace: string | undefined, query: ListQuery, watcher: Watcher): Promise<void> {
    this.watchQueries.push({ kind, query });
    return super.watch(apiVersion, kind, namespace, query, watcher);
  }
}

/** A release of `count` Deployments of `replicas` pods, all Running; `crashing` pods (by index over the release) crash-loop. */
function seedRelease(kube: MemoryKube, count: number, replicas: number, crashing: Set<number>, lagging = false): KubeObject[] {
  const applied: KubeObject[] = [];
  let n = 0;
  for (let d = 0; d < count; d++) {
    const name = `web-${d}`;
    const dep = kube.seed({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: NS, generation: 1, labels: { [RELEASE_LABEL]: 'big' }, annotations: { 'deployment.kubernetes.io/revision': '1' } },
      spec: {
        replicas,
        selector: { matchLabels: { app: name } },
        template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'app', image: 'r/app:1' }] } },
      },
      status: lagging
        ? { observedGeneration: 1, replicas, updatedReplicas: replicas, readyReplicas: 0, availableReplicas: 0, unavailableReplicas: replicas }
        : { observedGeneration: 1, replicas, updatedReplicas: replicas, readyReplicas: replicas, availableReplicas: replicas },
    });
    applied.push(dep);
    const rs = kube.seed({
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: `${name}-abc`,
        namespace: NS,
        labels: { app: name, 'pod-template-hash': 'abc' },
        annotations: { 'deployment.kubernetes.io/revision': '1' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name, uid: dep.metadata.uid as string, controller: true }],
      },
      spec: { replicas },
    });
    for (let p = 0; p < replicas; p++, n++) {
      const podName = `${name}-abc-${p}`;
      const crash = crashing.has(n);
      kube.seed({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: podName,
          namespace: NS,
          labels: { app: name, 'pod-template-hash': 'abc' },
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${name}-abc`, uid: rs.metadata.uid as string, controller: true }],
        },
        spec: { containers: [{ name: 'app', image: 'r/app:1' }] },
        status: crash
          ? {
              phase: 'Running',
              conditions: [{ type: 'Ready', status: 'False' }],
              containerStatuses: [
                {
                  name: 'app',
                  restartCount: 1,
                  state: { waiting: { reason: 'CrashLoopBackOff', message: `back-off 10s restarting failed container=app pod=${podName}` } },
                  lastState: { terminated: { exitCode: 1, reason: 'Error' } },
                },
              ],
            }
          : {
              phase: 'Running',
              conditions: [{ type: 'Ready', status: 'True' }],
              containerStatuses: [{ name: 'app', restartCount: 0, ready: true, state: { running: {} } }],
            },
      });
    }
  }
  return applied;
}

describe('trackRollout at scale (in memory)', () => {
  const track = (kube: MemoryKube, objects: KubeObject[], reporter = recorder()) =>
    trackRollout(kube, { objects, timeoutMs: 20_000, policy: defaultPolicy, reporter, signal: new AbortController().signal, now: () => new Date() });

  it('600 pods of 20 Deployments, 6 crashing: failed, with one group naming the count, and no line per pod', async () => {
    const kube = new QueryRecordingKube({ defaultNamespace: NS });
    const crashing = new Set([5, 95, 185, 275, 365, 455]);
    const objects = seedRelease(kube, 20, 30, crashing);
    const reporter = recorder();
    const result = await track(kube, objects, reporter);
    expect(result.ok).toBe(false);
    expect(result.failures.length).toBeGreaterThanOrEqual(1);
    expect(result.failures.length).toBeLessThanOrEqual(3);
    const groups = result.failures[0]!.groups!;
    expect(groups).toHaveLength(1);
    expect(groups[0]).toMatchObject({
      reason: 'CrashLoopBackOff',
      container: 'app',
      exitCode: 1,
      count: 6,
      message: 'back-off 10s restarting failed container=app pod=<pod>',
    });
    expect(groups[0]!.objects).toHaveLength(6);
    expect(groups[0]!.examples).toHaveLength(3);
    // Progress: at most a line per workload and a few summaries, never one per pod.
    expect(reporter.lines.length).toBeLessThanOrEqual(20 + 5);
    expect(reporter.lines.some((l) => /^(Pod\/)?web-\d+-abc-\d+/.test(l))).toBe(false);
    // Watches scoped to the release: the Deployments by release label, pods and ReplicaSets by one set-based selector.
    const byKind = (kind: string) => kube.watchQueries.filter((w) => w.kind === kind).map((w) => w.query);
    expect(byKind('Deployment')).toEqual([{ labelSelector: `${RELEASE_LABEL}=big` }]);
    expect(byKind('Pod')).toEqual([{ labelSelector: expect.stringMatching(/^app in \(web-0,web-1,.*\)$/) }]);
    expect(byKind('ReplicaSet')).toEqual(byKind('Pod'));
    expect(byKind('Event')).toEqual([{ fieldSelector: 'type=Warning' }]);
  });

  it('all 600 ready: ok, and a large release prints one line per workload, no pod lines', async () => {
    const kube = new MemoryKube({ defaultNamespace: NS });
    const objects = seedRelease(kube, 20, 30, new Set());
    const reporter = recorder();
    const result = await track(kube, objects, reporter);
    expect(result).toMatchObject({ ok: true, failures: [] });
    const ready = reporter.lines.filter((l) => /^Deployment\/web-\d+: ready/.test(l));
    expect(ready).toHaveLength(20);
    // A release-wide summary while waiting (at most one per 5 s) and one with the verdict.
    expect(reporter.lines.at(-1)).toBe('release: ready (20/20 objects ready; pods 600/600 ready, 600/600 updated)');
    expect(reporter.lines.length).toBeLessThanOrEqual(22);
  });

  it("a terminal's table gets the whole release after each change and once more with the outcome; the status lines are the log's", async () => {
    const crashing = new Set([5, 95]);
    const logKube = new MemoryKube({ defaultNamespace: NS });
    const log = recorder();
    const logResult = await track(logKube, seedRelease(logKube, 12, 10, crashing), log);
    const kube = new MemoryKube({ defaultNamespace: NS });
    const snapshots: RolloutProgress[] = [];
    const live = recorder();
    live.rollout = (p) => {
      snapshots.push(p);
      live.lines.push(`rollout: ${p.outcome ?? p.summary}`);
    };
    const result = await track(kube, seedRelease(kube, 12, 10, crashing), live);
    expect(result.ok).toBe(logResult.ok);
    expect(result.ok).toBe(false);
    // With or without a table, the same status lines, so a log reads exactly as before.
    const statuses = (lines: string[]) => lines.filter((l) => !l.startsWith('rollout: '));
    expect(statuses(live.lines)).toEqual(log.lines);
    // The table learns of a change before its status line.
    const firstFailed = live.lines.findIndex((l) => /^Deployment\/web-\d+: failed/.test(l));
    expect(live.lines.slice(0, firstFailed).some((l) => l.startsWith('rollout: '))).toBe(true);
    const last = snapshots.at(-1)!;
    expect(snapshots.slice(0, -1).every((p) => p.outcome === undefined)).toBe(true);
    expect(last.outcome).toBe('failed');
    expect(last.objects).toHaveLength(12);
    expect(last.summary).toMatch(/^\d+\/12 objects ready; pods \d+\/120 ready, 120\/120 updated$/);
    const failed = last.objects.filter((o) => o.state === 'failed');
    expect(failed.map((o) => o.object).sort()).toEqual(['Deployment/web-0', 'Deployment/web-9']);
    for (const o of failed) expect(o).toMatchObject({ pods: { ready: 10, want: 10 }, cause: expect.stringMatching(/CrashLoopBackOff/) });
    expect(last.objects.filter((o) => o.state === 'ready').every((o) => o.cause === undefined && o.pods?.want === 10)).toBe(true);
  });

  it('a release of 10 objects or fewer has no table: its objects have status lines of their own', async () => {
    const kube = new MemoryKube({ defaultNamespace: NS });
    const reporter = recorder();
    const snapshots: RolloutProgress[] = [];
    reporter.rollout = (p) => snapshots.push(p);
    expect(await track(kube, seedRelease(kube, 10, 2, new Set()), reporter)).toMatchObject({ ok: true });
    expect(snapshots).toEqual([]);
  });

  it('the verdict comes as soon as the last pod is ready', async () => {
    const kube = new MemoryKube({ defaultNamespace: NS });
    const objects = seedRelease(kube, 5, 10, new Set());
    // The last Deployment is still rolling out: 9 of 10 ready.
    kube.setStatus('apps/v1', 'Deployment', NS, 'web-4', { observedGeneration: 1, replicas: 10, updatedReplicas: 10, readyReplicas: 9, availableReplicas: 9 });
    const tracking = track(kube, objects);
    await new Promise((r) => setTimeout(r, 300));
    const readyAt = Date.now();
    kube.setStatus('apps/v1', 'Deployment', NS, 'web-4', {
      observedGeneration: 1,
      replicas: 10,
      updatedReplicas: 10,
      readyReplicas: 10,
      availableReplicas: 10,
    });
    const result = await tracking;
    expect(result.ok).toBe(true);
    expect(Date.now() - readyAt).toBeLessThan(500);
  });

  it('600 Ready pods whose Deployments still count 0 available: ready from the pods, without waiting for the controller', async () => {
    const kube = new MemoryKube({ defaultNamespace: NS });
    const objects = seedRelease(kube, 20, 30, new Set(), true);
    const started = Date.now();
    const result = await track(kube, objects);
    expect(result).toMatchObject({ ok: true, failures: [] });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('keeps slimmed pods: the watch objects are not retained whole', async () => {
    // A watch event's object is only read, never stored: mutate it after delivery and the verdict must not change.
    const kube = new MemoryKube({ defaultNamespace: NS });
    const objects = seedRelease(kube, 1, 3, new Set());
    const delivered: WatchEvent[] = [];
    const spy = Object.create(kube) as MemoryKube;
    spy.watch = (apiVersion, kind, ns, query, watcher) =>
      kube.watch(apiVersion, kind, ns, query, {
        ...watcher,
        onEvent: (ev) => {
          watcher.onEvent(ev);
          if (kind === 'Pod') {
            delivered.push(ev);
            // Break the delivered object: a tracker that kept it would now see a crash.
            ev.object.status = { phase: 'Running', containerStatuses: [{ name: 'app', restartCount: 5, state: { waiting: { reason: 'CrashLoopBackOff' } } }] };
          }
        },
      });
    const result = await track(spy, objects);
    expect(delivered.length).toBe(3);
    expect(result.ok).toBe(true);
  });
});

describe('a Deployment judged from its pods when its status lags', () => {
  const now = new Date('2026-01-01T00:01:00Z');
  const dep = (extra: Record<string, unknown> = {}) =>
    ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', generation: 1, uid: 'd1' },
      spec: { replicas: 3, ...extra },
      // The controller, busy with thousands of pods, has not counted them yet.
      status: { observedGeneration: 1, replicas: 3, updatedReplicas: 3, availableReplicas: 0, readyReplicas: 0, unavailableReplicas: 3 },
    }) as LiveObject;
  const pod = (name: string, ready: boolean, extra: Record<string, unknown> = {}) =>
    ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, ...extra },
      status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
    }) as LiveObject;
  const three = [pod('a', true), pod('b', true), pod('c', true)];

  it('is ready once every pod of the current revision is Ready and no other pod is left', () => {
    expect(verdict(dep(), { pods: three, oldPods: 0 }, defaultPolicy, now)).toEqual({ state: 'ready', message: '3/3 updated, 3/3 available' });
  });

  it('waits for the status while an old pod is left, a pod is not Ready, pods are missing, minReadySeconds is set, or the tracker does not know', () => {
    const waiting = (pods: LiveObject[], oldPods: number | undefined, d = dep()) => verdict(d, { pods, oldPods }, defaultPolicy, now).state;
    expect(waiting(three, 1)).toBe('progressing');
    expect(waiting([pod('a', true), pod('b', true), pod('c', false)], 0)).toBe('progressing');
    expect(waiting([pod('a', true), pod('b', true)], 0)).toBe('progressing');
    expect(waiting([pod('a', true), pod('b', true), pod('c', true, { deletionTimestamp: '2026-01-01T00:00:59Z' })], 0)).toBe('progressing');
    expect(waiting(three, 0, dep({ minReadySeconds: 10 }))).toBe('progressing');
    expect(waiting(three, undefined)).toBe('progressing');
  });
});
