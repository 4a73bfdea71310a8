import { isStale } from './table.js';
import type { ApiFields, LiveObject as Obj } from '../kube/objects.js';

export interface PodProblem {
  pod: string;
  container?: string;
  reason: string;
  message?: string;
  exitCode?: number;
  restarts?: number;
}

export interface RolloutVerdict {
  state: 'ready' | 'progressing' | 'failed';
  /** Short human summary: "2/3 replicas available". */
  message: string;
  problem?: PodProblem;
}

export interface ReadinessPolicy {
  /** Container restarts tolerated before CrashLoopBackOff counts as failure. */
  allowedRestarts: number;
  /**
   * How long a pod may stay unschedulable before that counts as failure: long enough for a
   * cluster autoscaler to add a node, or for a node to report Ready again after the control
   * plane comes back from a restart (it is briefly tainted while its heartbeats were lost).
   */
  unschedulableGraceMs: number;
  /** How long a PersistentVolumeClaim may stay Pending for a cause that will not fix itself (no such class). */
  pendingClaimGraceMs: number;
  /**
   * How long a container may stay in a state the kubelet retries on its own
   * (CreateContainerConfigError and friends) before that counts as failure.
   */
  retriedStateGraceMs: number;
}

export const defaultPolicy: ReadinessPolicy = { allowedRestarts: 0, unschedulableGraceMs: 60_000, pendingClaimGraceMs: 10_000, retriedStateGraceMs: 15_000 };

/**
 * When a problem was first seen, keyed by pod, container and reason. The
 * tracker keeps this memory across watch events; a one-off snapshot (skiff
 * status) has none, and then a problem counts from the moment it is seen.
 */
export type FirstSeen = (key: string) => number | undefined;

const FATAL_WAITING = new Set(['CrashLoopBackOff', 'ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull']);
/**
 * Waiting reasons the kubelet retries itself and that often clear: "failed to
 * sync configmap cache" right after a namespace is created, a Secret applied a
 * moment after the pod. They fail the rollout only when they persist.
 */
const RETRIED_WAITING = new Set(['CreateContainerConfigError', 'CreateContainerError', 'RunContainerError']);

/** A pod's first fatal problem, if any (pure). */
export function podProblem(pod: Obj, policy: ReadinessPolicy, now: Date, firstSeen?: FirstSeen): PodProblem | undefined {
  const name = pod.metadata.name;
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])] as ApiFields[];
  for (const cs of statuses) {
    const waiting = cs.state?.waiting;
    const last = cs.lastState?.terminated;
    if (waiting && FATAL_WAITING.has(waiting.reason)) {
      // CrashLoopBackOff with restartCount n: the container has crashed n + 1 times and the
      // kubelet waits before restart n + 1. With no restarts allowed the first crash fails.
      if (waiting.reason === 'CrashLoopBackOff' && (cs.restartCount ?? 0) < policy.allowedRestarts) continue;
      return { pod: name, container: cs.name, reason: waiting.reason, message: waiting.message, exitCode: last?.exitCode, restarts: cs.restartCount };
    }
    if (waiting && RETRIED_WAITING.has(waiting.reason)) {
      const since = firstSeen ? firstSeen(`${pod.metadata.namespace ?? ''}/${name}/${cs.name}/${waiting.reason}`) : undefined;
      if (since !== undefined && now.getTime() - since < policy.retriedStateGraceMs) continue;
      return { pod: name, container: cs.name, reason: waiting.reason, message: waiting.message, exitCode: last?.exitCode, restarts: cs.restartCount };
    }
    if (last?.reason === 'OOMKilled' && (cs.restartCount ?? 0) > policy.allowedRestarts) {
      return {
        pod: name,
        container: cs.name,
        reason: 'OOMKilled',
        message: 'the container exceeded its memory limit',
        exitCode: last.exitCode,
        restarts: cs.restartCount,
      };
    }
    const term = cs.state?.terminated;
    if (term?.reason === 'OOMKilled')
      return {
        pod: name,
        container: cs.name,
        reason: 'OOMKilled',
        message: 'the container exceeded its memory limit',
        exitCode: term.exitCode,
        restarts: cs.restartCount,
      };
  }
  const scheduled = (pod.status?.conditions ?? []).find((c: Record<string, string>) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    const since = Date.parse(scheduled.lastTransitionTime ?? '') || now.getTime();
    if (now.getTime() - since >= policy.unschedulableGraceMs) return { pod: name, reason: 'FailedScheduling', message: scheduled.message };
  }
  return undefined;
}

function condition(obj: Obj, type: string): Record<string, string> | undefined {
  return (obj.status?.conditions ?? []).find((c: Record<string, string>) => c.type === type);
}

function podReady(pod: Obj): boolean {
  return condition(pod, 'Ready')?.status === 'True';
}

/**
 * The verdict for one applied object from its live state, the pods of its
 * current revision and, for Deployments, its ReplicaSets. Pure.
 */
export function verdict(
  obj: Obj,
  related: {
    pods: Obj[];
    replicaSets?: Obj[];
    bindImmediately?: boolean;
    firstSeen?: FirstSeen;
    /** The cluster's StorageClasses (undefined: not known), to explain a Pending PVC. */
    storageClasses?: Obj[];
    /** Recent events about the object itself (a PVC's ProvisioningFailed…). */
    events?: Obj[];
    /**
     * A Deployment's pods of older ReplicaSets still there (the tracker knows;
     * undefined: not known). With none left and every pod of the current
     * revision Ready, the rollout is done before the controller, busy with
     * thousands of pods, has written it into the Deployment's status.
     */
    oldPods?: number;
  },
  policy: ReadinessPolicy,
  now: Date,
): RolloutVerdict {
  const stale = isStale(obj);
  const firstProblem = () => {
    for (const p of related.pods) {
      const problem = podProblem(p, policy, now, related.firstSeen);
      if (problem) return problem;
    }
    return undefined;
  };
  if (stale) {
    return { state: 'progressing', message: `the controller has not picked up generation ${String(obj.metadata.generation)} yet` };
  }
  switch (obj.kind) {
    case 'Deployment': {
      const want = obj.spec?.replicas ?? 1;
      const s = obj.status ?? {};
      const progressing = condition(obj, 'Progressing');
      if (progressing?.status === 'False' && progressing.reason === 'ProgressDeadlineExceeded') {
        return {
          state: 'failed',
          message: progressing.message ?? 'progress deadline exceeded',
          problem: firstProblem() ?? { pod: '', reason: 'ProgressDeadlineExceeded', message: progressing.message },
        };
      }
      const replicaFailure = condition(obj, 'ReplicaFailure');
      if (replicaFailure?.status === 'True')
        return {
          state: 'failed',
          message: replicaFailure.message ?? 'ReplicaSet could not create pods',
          problem: { pod: '', reason: replicaFailure.reason ?? 'FailedCreate', message: replicaFailure.message },
        };
      const problem = firstProblem();
      if (problem) return { state: 'failed', message: `pod ${problem.pod}: ${problem.reason}`, problem };
      const updated = s.updatedReplicas ?? 0;
      const available = s.availableReplicas ?? 0;
      const total = s.replicas ?? 0;
      const message = `${updated}/${want} updated, ${available}/${want} available${total > updated ? `, ${total - updated} old` : ''}`;
      const ready = !stale && updated >= want && available >= want && total <= want && (s.unavailableReplicas ?? 0) === 0;
      if (!ready && related.oldPods === 0 && !(obj.spec?.minReadySeconds > 0)) {
        // Judged from the pods themselves: all of the current revision, Ready (minReadySeconds 0: Ready is available), no other left.
        const current = related.pods.filter((p) => !p.metadata.deletionTimestamp);
        if (current.length === want && current.every(podReady)) return { state: 'ready', message: `${want}/${want} updated, ${want}/${want} available` };
      }
      return { state: ready ? 'ready' : 'progressing', message };
    }
    case 'StatefulSet': {
      const want = obj.spec?.replicas ?? 1;
      const s = obj.status ?? {};
      const problem = firstProblem();
      if (problem) return { state: 'failed', message: `pod ${problem.pod}: ${problem.reason}`, problem };
      const rolling = (obj.spec?.updateStrategy?.type ?? 'RollingUpdate') === 'RollingUpdate';
      const revisionDone = !rolling || !s.updateRevision || s.currentRevision === s.updateRevision || (s.updatedReplicas ?? 0) >= want;
      const ready =
        !stale &&
        (s.readyReplicas ?? 0) >= want &&
        (s.availableReplicas ?? s.readyReplicas ?? 0) >= want &&
        revisionDone &&
        (s.updatedReplicas ?? want) >= want;
      return { state: ready ? 'ready' : 'progressing', message: `${s.readyReplicas ?? 0}/${want} ready, ${s.updatedReplicas ?? 0}/${want} updated` };
    }
    case 'DaemonSet': {
      const s = obj.status ?? {};
      const problem = firstProblem();
      if (problem) return { state: 'failed', message: `pod ${problem.pod}: ${problem.reason}`, problem };
      const want = s.desiredNumberScheduled ?? 0;
      const ready = !stale && (s.updatedNumberScheduled ?? 0) >= want && (s.numberAvailable ?? 0) >= want;
      return { state: ready ? 'ready' : 'progressing', message: `${s.numberAvailable ?? 0}/${want} available` };
    }
    case 'Job': {
      const failed = condition(obj, 'Failed');
      if (failed?.status === 'True')
        return {
          state: 'failed',
          message: `job failed: ${failed.reason ?? ''} ${failed.message ?? ''}`.trim(),
          problem: firstFailedJobPod(related.pods) ?? { pod: '', reason: failed.reason ?? 'JobFailed', message: failed.message },
        };
      if (condition(obj, 'Complete')?.status === 'True') return { state: 'ready', message: `completed (${obj.status?.succeeded ?? 1} succeeded)` };
      const problem = firstProblem();
      if (problem && problem.reason !== 'CrashLoopBackOff') return { state: 'failed', message: `pod ${problem.pod}: ${problem.reason}`, problem };
      const active = obj.status?.active ?? 0;
      const failedPods = obj.status?.failed ?? 0;
      return { state: 'progressing', message: active === 0 && failedPods === 0 ? 'no pod started yet' : `${active} running, ${failedPods} failed` };
    }
    case 'Pod': {
      const problem = podProblem(obj, policy, now, related.firstSeen);
      if (problem) return { state: 'failed', message: problem.reason, problem };
      const phase = obj.status?.phase;
      if (phase === 'Succeeded') return { state: 'ready', message: 'succeeded' };
      if (phase === 'Failed')
        return { state: 'failed', message: 'pod failed', problem: firstFailedJobPod([obj]) ?? { pod: obj.metadata.name, reason: 'Failed' } };
      return { state: podReady(obj) ? 'ready' : 'progressing', message: phase ?? 'Pending' };
    }
    case 'PersistentVolumeClaim': {
      const phase = obj.status?.phase;
      if (phase === 'Bound') return { state: 'ready', message: 'Bound' };
      if (phase === 'Lost') return { state: 'failed', message: 'claim lost its volume', problem: { pod: '', reason: 'ClaimLost' } };
      if (related.bindImmediately === false) return { state: 'ready', message: 'Pending; binds when a pod uses it' };
      const cause = claimPendingCause(obj, related.storageClasses, related.events ?? []);
      if (!cause) return { state: 'progressing', message: phase ?? 'Pending' };
      const message = `${phase ?? 'Pending'}: ${cause.message}`;
      if (cause.fatal) {
        const key = `${obj.metadata.namespace ?? ''}/${obj.metadata.name}/${cause.reason}`;
        const since = related.firstSeen ? related.firstSeen(key) : undefined;
        if (since === undefined || now.getTime() - since >= policy.pendingClaimGraceMs)
          return { state: 'failed', message, problem: { pod: '', reason: cause.reason, message: cause.message } };
      }
      return { state: 'progressing', message };
    }
    default:
      return { state: 'ready', message: 'applied' };
  }
}

/** Why a PVC stays Pending, and whether waiting longer cannot help. */
export interface ClaimPendingCause {
  reason: string;
  message: string;
  /** Nothing in the cluster will change on its own: fail after the grace. */
  fatal: boolean;
}

/**
 * Why a Pending PVC is not bound (pure): a storage class that does not exist,
 * no class and no default class, or the provisioner's last word
 * (ProvisioningFailed / ExternalProvisioning events). `classes` undefined: the
 * StorageClasses could not be read, only events explain.
 */
export function claimPendingCause(pvc: Obj, classes: Obj[] | undefined, events: Obj[]): ClaimPendingCause | undefined {
  const className = pvc.spec?.storageClassName as string | undefined;
  if (classes && className && !classes.some((c) => c.metadata.name === className))
    return { reason: 'StorageClassNotFound', message: `storage class "${className}" does not exist`, fatal: true };
  const provisioning = events
    .filter(
      (e) =>
        (e.involvedObject?.kind ?? 'PersistentVolumeClaim') === 'PersistentVolumeClaim' &&
        e.involvedObject?.name === pvc.metadata.name &&
        (e.reason === 'ProvisioningFailed' || e.reason === 'ExternalProvisioning'),
    )
    .sort((a, b) => eventTime(a).localeCompare(eventTime(b)))
    .at(-1);
  // The class lookup above is the clearer word; the PV controller says the same as "storageclass … not found".
  if (provisioning) return { reason: String(provisioning.reason), message: String(provisioning.message ?? '').trim(), fatal: false };
  if (classes && className === undefined && !classes.some(isDefaultClass))
    return { reason: 'NoDefaultStorageClass', message: 'no storage class given and the cluster has no default', fatal: false };
  return undefined;
}

export function isDefaultClass(sc: Obj): boolean {
  const a = sc.metadata.annotations ?? {};
  return a['storageclass.kubernetes.io/is-default-class'] === 'true' || a['storageclass.beta.kubernetes.io/is-default-class'] === 'true';
}

/** A Service with a selector whose EndpointSlices list no ready endpoint (pure); undefined when it has one, or no selector. */
export function serviceWithoutEndpoints(svc: Obj, slices: Obj[]): string | undefined {
  const selector = (svc.spec?.selector ?? {}) as Record<string, string>;
  if (svc.spec?.type === 'ExternalName' || Object.keys(selector).length === 0) return undefined;
  const ready = slices.some((s) => ((s.endpoints ?? []) as ApiFields[]).some((e) => e.conditions?.ready !== false));
  if (ready) return undefined;
  const sel = Object.entries(selector)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return `no ready endpoints (selector ${sel} matches no ready pod)`;
}

function firstFailedJobPod(pods: Obj[]): PodProblem | undefined {
  for (const p of pods) {
    for (const cs of (p.status?.containerStatuses ?? []) as ApiFields[]) {
      const t = cs.state?.terminated ?? cs.lastState?.terminated;
      if (t && t.exitCode !== 0)
        return { pod: p.metadata.name, container: cs.name, reason: t.reason ?? 'Error', exitCode: t.exitCode, restarts: cs.restartCount };
    }
  }
  return undefined;
}

/**
 * The pods that belong to an object's current revision: for a Deployment the
 * newest ReplicaSet's pods, for a StatefulSet the update revision's, for a
 * DaemonSet those of its current template generation, for a Job its own.
 */
export function currentPods(obj: Obj, pods: Obj[], replicaSets: Obj[] = []): Obj[] {
  const uid = obj.metadata.uid as string | undefined;
  const ownedBy = (o: Obj, ownerUid: string | undefined) =>
    ((o.metadata.ownerReferences ?? []) as Array<{ uid: string }>).some((r: { uid: string }) => r.uid === ownerUid);
  switch (obj.kind) {
    case 'Deployment': {
      const revision = obj.metadata.annotations?.['deployment.kubernetes.io/revision'];
      const mine = replicaSets.filter((rs) => ownedBy(rs, uid));
      const newest =
        mine.find((rs) => rs.metadata.annotations?.['deployment.kubernetes.io/revision'] === revision) ??
        mine.sort(
          (a, b) =>
            Number(b.metadata.annotations?.['deployment.kubernetes.io/revision'] ?? 0) -
            Number(a.metadata.annotations?.['deployment.kubernetes.io/revision'] ?? 0),
        )[0];
      return newest ? pods.filter((p) => ownedBy(p, newest.metadata.uid as string)) : [];
    }
    case 'StatefulSet': {
      const rev = obj.status?.updateRevision;
      return pods.filter((p) => ownedBy(p, uid) && (!rev || p.metadata.labels?.['controller-revision-hash'] === rev));
    }
    case 'DaemonSet': {
      // Pods of the current template carry its generation; a crashing pod of the
      // template being replaced is not this rollout's failure.
      const generation = typeof obj.metadata.generation === 'number' ? String(obj.metadata.generation) : '';
      return pods.filter((p) => ownedBy(p, uid) && (!generation || (p.metadata.labels?.['pod-template-generation'] ?? generation) === generation));
    }
    case 'Job':
      return pods.filter((p) => ownedBy(p, uid));
    default:
      return [];
  }
}

/** How a container's readiness probe checks: exec `test -f /x`, httpGet :8080/healthz, tcpSocket :5432. */
export function describeProbe(probe: ApiFields | undefined): string | undefined {
  if (!probe) return undefined;
  if (probe.exec) return `exec \`${((probe.exec.command ?? []) as string[]).join(' ')}\``;
  if (probe.httpGet) return `httpGet :${String(probe.httpGet.port)}${(probe.httpGet.path as string | undefined) ?? '/'}`;
  if (probe.tcpSocket) return `tcpSocket :${String(probe.tcpSocket.port)}`;
  if (probe.grpc) return `grpc :${String(probe.grpc.port)}`;
  return undefined;
}

/** Why pods are Running but not Ready, grouped by cause. */
export interface UnreadyCause {
  pods: string[];
  container?: string;
  /** The probe's handler, from the pod spec. */
  probe?: string;
  /** The kubelet's last message: "Readiness probe failed: …". */
  message: string;
  /** How many times the probe failed, over the pods. */
  failures: number;
}

const READINESS_FAILED = /^Readiness probe failed:?\s*/;

/**
 * The causes of Running-but-not-Ready pods, from the kubelet's `Unhealthy`
 * Warning events about them (pure). Pods without such an event yet are left
 * out: their probe has not failed, it just has not passed.
 */
export function unreadyCauses(pods: Obj[], events: Obj[]): UnreadyCause[] {
  const groups = new Map<string, UnreadyCause>();
  for (const pod of pods) {
    if (pod.status?.phase !== 'Running' || podReady(pod) || pod.metadata.deletionTimestamp) continue;
    const last = events
      .filter((e) => e.involvedObject?.name === pod.metadata.name && e.reason === 'Unhealthy' && READINESS_FAILED.test(String(e.message ?? '')))
      .sort((a, b) => eventTime(a).localeCompare(eventTime(b)))
      .at(-1);
    if (!last) continue;
    // "spec.containers{web}" names the container whose probe failed.
    const container = /\{(.+)\}/.exec(String(last.involvedObject?.fieldPath ?? ''))?.[1];
    const spec =
      ((pod.spec?.containers ?? []) as ApiFields[]).find((c) => c.name === container) ??
      ((pod.spec?.containers ?? []) as ApiFields[]).find((c) => c.readinessProbe);
    const probe = describeProbe(spec?.readinessProbe as ApiFields | undefined);
    const message = String(last.message).replace(READINESS_FAILED, '').trim().split('\n')[0]!.trim();
    const key = `${spec?.name as string}\0${probe}\0${message}`;
    const g = groups.get(key) ?? { pods: [], container: spec?.name as string | undefined, probe, message, failures: 0 };
    g.pods.push(pod.metadata.name);
    g.failures += Number(last.count ?? last.series?.count ?? 1) || 1;
    groups.set(key, g);
  }
  return [...groups.values()];
}

/** `2 pods: readiness probe failed 58 times: exec `test -f /www/missing.html` (…)`; without counts for a progress line. */
export function formatUnreadyCause(c: UnreadyCause, counts = true): string {
  const who = c.pods.length === 1 ? `pod ${c.pods[0]}` : `${c.pods.length} pods`;
  const how = counts ? `readiness probe failed ${c.failures} time${c.failures === 1 ? '' : 's'}` : 'readiness probe failing';
  const what = [c.probe, c.container ? `in container ${c.container}` : undefined].filter(Boolean).join(' ');
  return `${who}: ${how}${what ? `: ${what}` : ''}${c.message ? ` (${c.message})` : ''}`;
}

function eventTime(e: Obj): string {
  return String(e.lastTimestamp ?? e.series?.lastObservedTime ?? e.eventTime ?? e.metadata.creationTimestamp ?? '');
}

/**
 * What the tracker keeps of a pod: the fields readiness, unready causes and
 * diagnoses read, and nothing else (no managedFields, env, volumes or
 * annotations), so following 15,000 pods costs a few MiB, not hundreds. Pure.
 */
export function slimPod(pod: Obj): Obj {
  const m = pod.metadata;
  const labels = m.labels ?? {};
  const keep: Record<string, string> = {};
  for (const k of ['controller-revision-hash', 'pod-template-generation']) if (labels[k] !== undefined) keep[k] = labels[k];
  const status = (pod.status ?? {}) as ApiFields;
  const containerStatus = (cs: ApiFields) => ({ name: cs.name, ready: cs.ready, restartCount: cs.restartCount, state: cs.state, lastState: cs.lastState });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      labels: keep,
      ownerReferences: ((m.ownerReferences ?? []) as ApiFields[]).map((r) => ({ kind: r.kind, name: r.name, uid: r.uid, controller: r.controller })),
      ...(m.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
    },
    spec: {
      // Only what explains a readiness failure: the containers' names and probes.
      containers: ((pod.spec?.containers ?? []) as ApiFields[]).map((c) => ({
        name: c.name,
        ...(c.readinessProbe ? { readinessProbe: c.readinessProbe } : {}),
      })),
    },
    status: {
      phase: status.phase,
      conditions: ((status.conditions ?? []) as ApiFields[]).map((c) => ({
        type: c.type,
        status: c.status,
        reason: c.reason,
        message: c.message,
        lastTransitionTime: c.lastTransitionTime,
      })),
      ...(status.initContainerStatuses ? { initContainerStatuses: (status.initContainerStatuses as ApiFields[]).map(containerStatus) } : {}),
      ...(status.containerStatuses ? { containerStatuses: (status.containerStatuses as ApiFields[]).map(containerStatus) } : {}),
    },
  };
}

/** What the tracker keeps of a ReplicaSet: its owner and revision, to find a Deployment's current pods. Pure. */
export function slimReplicaSet(rs: Obj): Obj {
  const m = rs.metadata;
  const revision = m.annotations?.['deployment.kubernetes.io/revision'];
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      annotations: revision === undefined ? {} : { 'deployment.kubernetes.io/revision': revision },
      ownerReferences: ((m.ownerReferences ?? []) as ApiFields[]).map((r) => ({ kind: r.kind, name: r.name, uid: r.uid, controller: r.controller })),
    },
  };
}

/** A failing pod and the applied object it belongs to. */
export interface ObjectPodProblem extends PodProblem {
  object: string;
}

/** Pods that fail for the same cause: what a diagnosis shows instead of one line per pod. */
export interface ProblemGroup {
  reason: string;
  container?: string;
  exitCode?: number;
  /** The message with the pod's own name and UIDs taken out, so equal causes group. */
  message?: string;
  /** How many pods fail this way. */
  count: number;
  /** The objects whose pods they are, in order of first appearance. */
  objects: string[];
  /** A few of the pods, to look at. */
  examples: string[];
}

const UID = /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/g;

/**
 * Failing pods grouped by cause (reason, container, exit code and message),
 * the largest group first, each with its count, its objects and up to
 * `examples` pod names. Pure.
 */
export function groupProblems(problems: ObjectPodProblem[], examples = 3): ProblemGroup[] {
  const groups = new Map<string, ProblemGroup>();
  for (const p of problems) {
    const message = p.message ? (p.pod ? p.message.replaceAll(p.pod, '<pod>') : p.message).replace(UID, '<uid>').trim() : undefined;
    const key = JSON.stringify([p.reason, p.container ?? '', p.exitCode ?? '', message ?? '']);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { reason: p.reason, container: p.container, exitCode: p.exitCode, message, count: 0, objects: [], examples: [] }));
    g.count++;
    if (!g.objects.includes(p.object)) g.objects.push(p.object);
    if (p.pod && g.examples.length < examples) g.examples.push(p.pod);
  }
  return [...groups.values()].sort((a, b) => b.count - a.count);
}

/** `12 pods of 4 objects (Deployment/web-1, …): CrashLoopBackOff in container app, exit code 1: simulated crash; e.g. web-1-x, web-7-y` */
export function formatProblemGroup(g: ProblemGroup, maxObjects = 3): string {
  const who = g.count === 1 ? '1 pod' : `${g.count} pods`;
  const objects =
    g.objects.length === 1
      ? g.objects[0]
      : `${g.objects.length} objects: ${g.objects.slice(0, maxObjects).join(', ')}${g.objects.length > maxObjects ? ', …' : ''}`;
  const what = [g.reason, g.container ? `in container ${g.container}` : undefined].filter(Boolean).join(' ');
  const exit = g.exitCode !== undefined ? `, exit code ${g.exitCode}` : '';
  return `${who} of ${objects}: ${what}${exit}${g.message ? `: ${g.message}` : ''}${g.examples.length ? `; e.g. ${g.examples.join(', ')}` : ''}`;
}

/** How far a workload has rolled out, from its live status: the numbers a progress line shows. */
export interface WorkloadCounts {
  want: number;
  ready: number;
  updated: number;
}

/** The replica counts of a Deployment, StatefulSet or DaemonSet (undefined for other kinds). Pure. */
export function workloadCounts(obj: Obj): WorkloadCounts | undefined {
  const s = (obj.status ?? {}) as ApiFields;
  switch (obj.kind) {
    case 'Deployment':
    case 'StatefulSet':
      return { want: obj.spec?.replicas ?? 1, ready: s.readyReplicas ?? 0, updated: s.updatedReplicas ?? 0 };
    case 'DaemonSet':
      return { want: s.desiredNumberScheduled ?? 0, ready: s.numberReady ?? 0, updated: s.updatedNumberScheduled ?? 0 };
    default:
      return undefined;
  }
}

/** The release-wide progress line of a large rollout: `37/50 objects ready; pods 1312/1500 ready, 1500/1500 updated`. Pure. */
export function formatRolloutSummary(objects: { ready: number; total: number }, pods: WorkloadCounts): string {
  return `${objects.ready}/${objects.total} objects ready; pods ${pods.ready}/${pods.want} ready, ${pods.updated}/${pods.want} updated`;
}

/**
 * Label selectors that cover the pods (and ReplicaSets) of the given
 * workloads and little else, for watches scoped to a release instead of a
 * whole namespace. Each workload's own selector is its spec.selector's
 * matchLabels (a Job's pods: job-name, which every Kubernetes version sets); workloads whose
 * selectors share a key are folded into one set-based selector
 * (`app in (web-1,web-2,…)`), so 500 Deployments need one watch, not 500.
 * undefined: some workload cannot be selected by labels alone
 * (matchExpressions), or it would take more than `maxWatches` watches; then
 * the caller watches the namespace. Pure.
 */
export function childSelectors(workloads: Obj[], maxWatches = 4): string[] | undefined {
  const own: Array<Record<string, string>> = [];
  for (const w of workloads) {
    if (w.kind === 'Job') {
      own.push({ 'job-name': w.metadata.name });
      continue;
    }
    const sel = w.spec?.selector as ApiFields | undefined;
    const labels = sel?.matchLabels as Record<string, string> | undefined;
    if (!labels || Object.keys(labels).length === 0 || (sel?.matchExpressions as unknown[] | undefined)?.length) return undefined;
    own.push(labels);
  }
  const selectors: string[] = [];
  let left = own;
  while (left.length) {
    // The key most of the remaining selectors have: one `key in (…)` covers them all.
    const counts = new Map<string, number>();
    for (const l of left) for (const k of Object.keys(l)) counts.set(k, (counts.get(k) ?? 0) + 1);
    const [key] = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]!;
    const covered = left.filter((l) => l[key] !== undefined);
    const values = [...new Set(covered.map((l) => l[key]!))].sort();
    selectors.push(
      values.length === 1 && covered.length === 1
        ? Object.entries(covered[0]!)
            .map(([k, v]) => `${k}=${v}`)
            .sort()
            .join(',')
        : `${key} in (${values.join(',')})`,
    );
    left = left.filter((l) => l[key] === undefined);
    if (selectors.length > maxWatches) return undefined;
  }
  return selectors;
}
