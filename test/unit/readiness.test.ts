import { describe, expect, it } from 'vitest';
import { formatDeploySummary } from '../../src/cli/format.js';
import { podProblem } from '../../src/kinds/pod.js';
import { claimPendingCause } from '../../src/kinds/pvc.js';
import { currentPods, defaultPolicy, verdict } from '../../src/kinds/readiness.js';
import { serviceWithoutEndpoints } from '../../src/kinds/service.js';
import { describeProbe, formatUnreadyCause, unreadyCauses } from '../../src/kinds/unready.js';

const now = new Date('2026-01-01T00:00:30Z');

function pod(name: string, containerStatuses: any[], extra: Record<string, any> = {}): any {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, ...(extra.metadata ?? {}) },
    status: { phase: 'Pending', containerStatuses, ...(extra.status ?? {}) },
  };
}
const waiting = (reason: string, message = '', restartCount = 0) => ({ name: 'web', restartCount, state: { waiting: { reason, message } } });

function deployment(status: Record<string, any>, replicas = 1, conditions: any[] = []): any {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', generation: 2, uid: 'd1' },
    spec: { replicas },
    status: { observedGeneration: 2, conditions, ...status },
  };
}

describe('podProblem', () => {
  it('fails at once on an image that cannot be pulled', () => {
    const p = podProblem(pod('web-1', [waiting('ImagePullBackOff', 'Back-off pulling image "r/app:nope"')]), defaultPolicy, now);
    expect(p).toMatchObject({ pod: 'web-1', container: 'web', reason: 'ImagePullBackOff' });
  });

  it('tolerates CrashLoopBackOff up to the allowed restarts, then reports the exit code', () => {
    const crashing = (restarts: number) =>
      pod('web-1', [{ ...waiting('CrashLoopBackOff', 'back-off', restarts), lastState: { terminated: { exitCode: 3, reason: 'Error' } } }]);
    // The first crash: the kubelet backs off before restart 1.
    expect(podProblem(crashing(0), defaultPolicy, now)).toMatchObject({ reason: 'CrashLoopBackOff', exitCode: 3, restarts: 0 });
    expect(podProblem(crashing(1), { ...defaultPolicy, allowedRestarts: 2 }, now)).toBeUndefined();
    expect(podProblem(crashing(2), { ...defaultPolicy, allowedRestarts: 2 }, now)).toMatchObject({ reason: 'CrashLoopBackOff', exitCode: 3, restarts: 2 });
  });

  it('lets the kubelet retry CreateContainerConfigError for the grace period before failing', () => {
    const p = pod('web-1', [waiting('CreateContainerConfigError', 'failed to sync configmap cache: timed out waiting for the condition')]);
    const seen = new Map<string, number>([['/web-1/web/CreateContainerConfigError', now.getTime() - 5_000]]);
    expect(podProblem(p, defaultPolicy, now, (k) => seen.get(k))).toBeUndefined();
    seen.set('/web-1/web/CreateContainerConfigError', now.getTime() - defaultPolicy.retriedStateGraceMs);
    expect(podProblem(p, defaultPolicy, now, (k) => seen.get(k))).toMatchObject({
      reason: 'CreateContainerConfigError',
      message: expect.stringContaining('configmap cache'),
    });
  });

  it('without a memory of when it started (a snapshot), a retried state is reported as it is', () => {
    const p = pod('web-1', [waiting('CreateContainerConfigError', 'secret "db" not found')]);
    expect(podProblem(p, defaultPolicy, now)).toMatchObject({ reason: 'CreateContainerConfigError', message: 'secret "db" not found' });
  });

  it('reports an unschedulable pod only after its grace period', () => {
    const unschedulable = (since: Date) =>
      pod('web-1', [], {
        status: {
          conditions: [
            { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes are available', lastTransitionTime: since.toISOString() },
          ],
        },
      });
    expect(podProblem(unschedulable(new Date(now.getTime() - 2_000)), defaultPolicy, now)).toBeUndefined();
    // An autoscaler adding a node, or a node Ready again after a control-plane restart, takes tens of seconds.
    expect(podProblem(unschedulable(new Date(now.getTime() - 30_000)), defaultPolicy, now)).toBeUndefined();
    expect(podProblem(unschedulable(new Date(now.getTime() - 61_000)), defaultPolicy, now)).toMatchObject({
      reason: 'FailedScheduling',
      message: '0/1 nodes are available',
    });
  });

  it('reports an OOM-killed container', () => {
    const p = pod('web-1', [{ name: 'web', restartCount: 1, state: { running: {} }, lastState: { terminated: { reason: 'OOMKilled', exitCode: 137 } } }]);
    expect(podProblem(p, defaultPolicy, now)).toMatchObject({ reason: 'OOMKilled', exitCode: 137 });
  });
});

describe('verdict', () => {
  it('a Deployment is ready only when every replica is updated and available and no old ones remain', () => {
    expect(verdict(deployment({ replicas: 3, updatedReplicas: 2, availableReplicas: 2 }, 2), { pods: [] }, defaultPolicy, now)).toEqual({
      state: 'progressing',
      message: '2/2 updated, 2/2 available, 1 old',
    });
    expect(verdict(deployment({ replicas: 2, updatedReplicas: 2, availableReplicas: 2 }, 2), { pods: [] }, defaultPolicy, now).state).toBe('ready');
  });

  it('a Deployment the controller has not observed yet is still progressing, whatever its old status says', () => {
    const d = deployment({ replicas: 1, updatedReplicas: 1, availableReplicas: 1 });
    d.status.observedGeneration = 1;
    expect(verdict(d, { pods: [] }, defaultPolicy, now)).toMatchObject({ state: 'progressing', message: 'the controller has not picked up generation 2 yet' });
  });

  it('a Deployment past its progress deadline has failed', () => {
    const d = deployment({ replicas: 1 }, 1, [
      { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'ReplicaSet "web-1" has timed out progressing.' },
    ]);
    expect(verdict(d, { pods: [] }, defaultPolicy, now)).toMatchObject({ state: 'failed', message: 'ReplicaSet "web-1" has timed out progressing.' });
  });

  it('a Deployment with a retried container state keeps progressing while the state is young', () => {
    const p = pod('web-1', [waiting('CreateContainerConfigError', 'failed to sync configmap cache')]);
    const d = deployment({ replicas: 1, updatedReplicas: 1, availableReplicas: 0 });
    expect(verdict(d, { pods: [p], firstSeen: () => now.getTime() - 1_000 }, defaultPolicy, now).state).toBe('progressing');
    expect(verdict(d, { pods: [p], firstSeen: () => now.getTime() - 20_000 }, defaultPolicy, now)).toMatchObject({
      state: 'failed',
      message: 'pod web-1: CreateContainerConfigError',
    });
  });

  it('a Job is ready when complete, failed with the failing pod named and its exit code', () => {
    const job = (conditions: any[]): any => ({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'migrate', uid: 'j1' },
      status: { conditions, succeeded: 1 },
    });
    expect(verdict(job([{ type: 'Complete', status: 'True' }]), { pods: [] }, defaultPolicy, now)).toEqual({
      state: 'ready',
      message: 'completed (1 succeeded)',
    });
    const failedPod = pod('migrate-x', [{ name: 'migrate', restartCount: 0, state: { terminated: { exitCode: 2, reason: 'Error' } } }]);
    expect(
      verdict(
        job([{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' }]),
        { pods: [failedPod] },
        defaultPolicy,
        now,
      ),
    ).toMatchObject({ state: 'failed', problem: { pod: 'migrate-x', container: 'migrate', exitCode: 2 } });
  });

  it('a PVC that binds on first use is ready once applied; otherwise when Bound', () => {
    const pvc = (phase: string): any => ({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data' }, status: { phase } });
    expect(verdict(pvc('Pending'), { pods: [], bindImmediately: false }, defaultPolicy, now).state).toBe('ready');
    expect(verdict(pvc('Pending'), { pods: [], bindImmediately: true }, defaultPolicy, now).state).toBe('progressing');
    expect(verdict(pvc('Bound'), { pods: [] }, defaultPolicy, now).state).toBe('ready');
  });

  it('a Pending PVC explains itself: a missing class fails after the grace, no default class and provisioner events are shown', () => {
    const claim = (storageClassName?: string): any => ({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'data', namespace: 'shop' },
      spec: storageClassName === undefined ? {} : { storageClassName },
      status: { phase: 'Pending' },
    });
    const sc = (name: string, isDefault = false): any => ({
      metadata: { name, annotations: isDefault ? { 'storageclass.kubernetes.io/is-default-class': 'true' } : {} },
    });
    const seen = new Map<string, number>();
    const firstSeen = (key: string) => {
      if (!seen.has(key)) seen.set(key, now.getTime());
      return seen.get(key);
    };
    const classes = [sc('local', true)];
    expect(verdict(claim('x'), { pods: [], storageClasses: classes, firstSeen }, defaultPolicy, now)).toEqual({
      state: 'progressing',
      message: 'Pending: storage class "x" does not exist',
    });
    const later = new Date(now.getTime() + defaultPolicy.pendingClaimGraceMs);
    expect(verdict(claim('x'), { pods: [], storageClasses: classes, firstSeen }, defaultPolicy, later)).toMatchObject({
      state: 'failed',
      problem: { reason: 'StorageClassNotFound', message: 'storage class "x" does not exist' },
    });
    // A snapshot (skiff status) has no memory: the problem counts at once.
    expect(verdict(claim('x'), { pods: [], storageClasses: classes }, defaultPolicy, now).state).toBe('failed');
    expect(verdict(claim('local'), { pods: [], storageClasses: classes }, defaultPolicy, now)).toEqual({ state: 'progressing', message: 'Pending' });
    expect(verdict(claim(), { pods: [], storageClasses: [sc('local')] }, defaultPolicy, now)).toEqual({
      state: 'progressing',
      message: 'Pending: no storage class given and the cluster has no default',
    });
    // StorageClasses unknown (not allowed to read them): no guess.
    expect(claimPendingCause(claim('x'), undefined, [])).toBeUndefined();
    const ev = (reason: string, message: string, at: string): any => ({
      metadata: { name: `e-${at}` },
      involvedObject: { kind: 'PersistentVolumeClaim', name: 'data' },
      reason,
      message,
      lastTimestamp: at,
    });
    expect(
      claimPendingCause(
        claim('slow'),
        [sc('slow')],
        [
          ev('ExternalProvisioning', 'Waiting for a volume to be created either by the external provisioner "ebs.csi.aws.com"', '2026-01-01T00:00:10Z'),
          ev('ProvisioningFailed', 'failed to provision volume: quota exceeded', '2026-01-01T00:00:20Z'),
        ],
      ),
    ).toEqual({ reason: 'ProvisioningFailed', message: 'failed to provision volume: quota exceeded', fatal: false });
  });

  it('a Service whose selector matches no ready pod has no ready endpoints; a selector-less one is not judged', () => {
    const svc = (selector?: Record<string, string>): any => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { selector } });
    const slice = (ready: boolean): any => ({ metadata: { name: 'web-abc' }, endpoints: [{ addresses: ['10.0.0.5'], conditions: { ready } }] });
    expect(serviceWithoutEndpoints(svc({ app: 'wbe' }), [])).toBe('no ready endpoints (selector app=wbe matches no ready pod)');
    expect(serviceWithoutEndpoints(svc({ app: 'web', tier: 'front' }), [slice(false)])).toBe(
      'no ready endpoints (selector app=web,tier=front matches no ready pod)',
    );
    expect(serviceWithoutEndpoints(svc({ app: 'web' }), [slice(true)])).toBeUndefined();
    expect(serviceWithoutEndpoints(svc(), [])).toBeUndefined();
  });

  it('objects that have no rollout (a Service) are ready once applied', () => {
    expect(verdict({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' } } as any, { pods: [] }, defaultPolicy, now)).toEqual({
      state: 'ready',
      message: 'applied',
    });
  });
});

describe('currentPods', () => {
  it("a DaemonSet's current pods are those of its template generation: an old crashing pod is not the rollout's", () => {
    const ds: any = { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'agent', uid: 'ds1', generation: 3 } };
    const owned = (name: string, generation: string): any => ({
      ...pod(name, []),
      metadata: { name, labels: { 'pod-template-generation': generation }, ownerReferences: [{ uid: 'ds1' }] },
    });
    expect(currentPods(ds, [owned('agent-old', '2'), owned('agent-new', '3')]).map((p) => p.metadata.name)).toEqual(['agent-new']);
  });

  it("a Deployment's current pods are those of its newest ReplicaSet only", () => {
    const d: any = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', uid: 'd1', annotations: { 'deployment.kubernetes.io/revision': '2' } },
    };
    const rs = (uid: string, revision: string): any => ({
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: `web-${uid}`, uid, annotations: { 'deployment.kubernetes.io/revision': revision }, ownerReferences: [{ uid: 'd1' }] },
    });
    const owned = (name: string, owner: string): any => ({ ...pod(name, []), metadata: { name, ownerReferences: [{ uid: owner }] } });
    const pods = currentPods(d, [owned('old-pod', 'rs1'), owned('new-pod', 'rs2'), owned('stranger', 'other')], [rs('rs1', '1'), rs('rs2', '2')]);
    expect(pods.map((p) => p.metadata.name)).toEqual(['new-pod']);
  });
});

describe('unreadyCauses', () => {
  const running = (name: string, readinessProbe: any, ready = false): any => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name },
    spec: { containers: [{ name: 'web', readinessProbe }] },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  });
  const unhealthy = (podName: string, count: number, message: string, at = '2026-01-01T00:00:20Z'): any => ({
    type: 'Warning',
    reason: 'Unhealthy',
    count,
    lastTimestamp: at,
    message,
    metadata: { name: `${podName}.1` },
    involvedObject: { kind: 'Pod', name: podName, fieldPath: 'spec.containers{web}' },
  });
  const exec = { exec: { command: ['test', '-f', '/www/missing.html'] }, periodSeconds: 1 };

  it('names the probe handler from the pod spec', () => {
    expect(describeProbe(exec)).toBe('exec `test -f /www/missing.html`');
    expect(describeProbe({ httpGet: { path: '/healthz', port: 8080 } })).toBe('httpGet :8080/healthz');
    expect(describeProbe({ tcpSocket: { port: 'db' } })).toBe('tcpSocket :db');
    expect(describeProbe(undefined)).toBeUndefined();
  });

  it("groups Running-but-not-Ready pods by their probe and the kubelet's last message, counting the failures", () => {
    const pods = [running('web-a', exec), running('web-b', exec)];
    const events = [
      unhealthy('web-a', 3, 'Readiness probe failed: ', '2026-01-01T00:00:05Z'),
      unhealthy('web-a', 30, 'Readiness probe failed: '),
      unhealthy('web-b', 28, 'Readiness probe failed: '),
    ];
    const causes = unreadyCauses(pods, events);
    expect(causes).toEqual([{ pods: ['web-a', 'web-b'], container: 'web', probe: 'exec `test -f /www/missing.html`', message: '', failures: 58 }]);
    expect(formatUnreadyCause(causes[0]!)).toBe('2 pods: readiness probe failed 58 times: exec `test -f /www/missing.html` in container web');
    expect(formatUnreadyCause(causes[0]!, false)).toBe('2 pods: readiness probe failing: exec `test -f /www/missing.html` in container web');
  });

  it("quotes an HTTP probe's failure, one pod", () => {
    const pods = [running('web-a', { httpGet: { path: '/healthz', port: 8080 } })];
    const causes = unreadyCauses(pods, [unhealthy('web-a', 1, 'Readiness probe failed: HTTP probe failed with statuscode: 503')]);
    expect(causes.map((c) => formatUnreadyCause(c))).toEqual([
      'pod web-a: readiness probe failed 1 time: httpGet :8080/healthz in container web (HTTP probe failed with statuscode: 503)',
    ]);
  });

  it('says nothing of ready pods, pods not running, liveness failures, or pods the kubelet has not reported yet', () => {
    const pending = { ...running('web-c', exec), status: { phase: 'Pending' } };
    const events = [
      unhealthy('web-a', 5, 'Readiness probe failed: '),
      unhealthy('web-b', 5, 'Liveness probe failed: '),
      unhealthy('web-c', 5, 'Readiness probe failed: '),
    ];
    expect(unreadyCauses([running('web-a', exec, true), running('web-b', exec), pending, running('web-d', exec)], events)).toEqual([]);
  });
});

describe("a timed-out deploy's summary", () => {
  it('names the root cause per unready workload', () => {
    const result: any = {
      status: 'failed',
      release: 'hello-staging',
      revision: 2,
      failures: [],
      notReady: [
        {
          object: 'Deployment/web',
          message: '2/2 updated, 0/2 available',
          cause: '2 pods: readiness probe failed 58 times: exec `test -f /www/missing.html` in container web',
        },
        { object: 'StatefulSet/db', message: '0/1 ready' },
      ],
    };
    expect(formatDeploySummary(result)).toEqual([
      'Deployment/web: not ready: 2 pods: readiness probe failed 58 times: exec `test -f /www/missing.html` in container web',
    ]);
  });
});
