import type { ApiFields, LiveObject as Obj } from '../kube/objects.js';
import { Phase, type KindRow } from './kind-row.js';
import { condition, podReady, slimOwnerRefs } from './object-fields.js';
import type { FirstSeen, PodProblem, ReadinessPolicy } from './readiness.js';

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
    const problem = containerProblem(pod, cs, policy, now, firstSeen);
    if (problem) return problem;
  }
  const scheduled = condition(pod, 'PodScheduled');
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    const since = Date.parse(scheduled.lastTransitionTime ?? '') || now.getTime();
    if (now.getTime() - since >= policy.unschedulableGraceMs) return { pod: name, reason: 'FailedScheduling', message: scheduled.message };
  }
  return undefined;
}

/** The first problem among pods, judging them in order and no further than that (firstSeen remembers what it is asked). */
export function firstPodProblem(pods: Obj[], policy: ReadinessPolicy, now: Date, firstSeen?: FirstSeen): PodProblem | undefined {
  for (const p of pods) {
    const problem = podProblem(p, policy, now, firstSeen);
    if (problem) return problem;
  }
  return undefined;
}

function containerProblem(pod: Obj, cs: ApiFields, policy: ReadinessPolicy, now: Date, firstSeen?: FirstSeen): PodProblem | undefined {
  const name = pod.metadata.name;
  const waiting = cs.state?.waiting;
  const last = cs.lastState?.terminated;
  if (waiting && FATAL_WAITING.has(waiting.reason)) {
    // CrashLoopBackOff with restartCount n: the container has crashed n + 1 times and the
    // kubelet waits before restart n + 1. With no restarts allowed the first crash fails.
    if (waiting.reason === 'CrashLoopBackOff' && (cs.restartCount ?? 0) < policy.allowedRestarts) return undefined;
    return { pod: name, container: cs.name, reason: waiting.reason, message: waiting.message, exitCode: last?.exitCode, restarts: cs.restartCount };
  }
  if (waiting && RETRIED_WAITING.has(waiting.reason)) {
    const since = firstSeen ? firstSeen(`${pod.metadata.namespace ?? ''}/${name}/${cs.name}/${waiting.reason}`) : undefined;
    if (since !== undefined && now.getTime() - since < policy.retriedStateGraceMs) return undefined;
    return { pod: name, container: cs.name, reason: waiting.reason, message: waiting.message, exitCode: last?.exitCode, restarts: cs.restartCount };
  }
  const oomKilled = (exitCode: number | undefined): PodProblem => ({
    pod: name,
    container: cs.name,
    reason: 'OOMKilled',
    message: 'the container exceeded its memory limit',
    exitCode,
    restarts: cs.restartCount,
  });
  if (last?.reason === 'OOMKilled' && (cs.restartCount ?? 0) > policy.allowedRestarts) return oomKilled(last.exitCode);
  const term = cs.state?.terminated;
  if (term?.reason === 'OOMKilled') return oomKilled(term.exitCode);
  return undefined;
}

/** The first container of these pods that terminated with a non-zero exit code: why a Job or a bare Pod failed. */
export function firstFailedPod(pods: Obj[]): PodProblem | undefined {
  for (const p of pods) {
    for (const cs of (p.status?.containerStatuses ?? []) as ApiFields[]) {
      const t = cs.state?.terminated ?? cs.lastState?.terminated;
      if (t && t.exitCode !== 0)
        return { pod: p.metadata.name, container: cs.name, reason: t.reason ?? 'Error', exitCode: t.exitCode, restarts: cs.restartCount };
    }
  }
  return undefined;
}

export const podRow: KindRow = {
  kind: 'Pod',
  phase: Phase.workload,
  podTemplate: [],
  rollout: {
    watches: [],
    judge(obj, related, policy, now) {
      const problem = podProblem(obj, policy, now, related.firstSeen);
      if (problem) return { state: 'failed', message: problem.reason, problem };
      const phase = obj.status?.phase as string | undefined;
      if (phase === 'Succeeded') return { state: 'ready', message: 'succeeded' };
      if (phase === 'Failed') return { state: 'failed', message: 'pod failed', problem: firstFailedPod([obj]) ?? { pod: obj.metadata.name, reason: 'Failed' } };
      return { state: podReady(obj) ? 'ready' : 'progressing', message: phase ?? 'Pending' };
    },
  },
};

/** The names of a pod's containers (not its init containers). */
export function containerNames(pod: Obj): string[] {
  return ((pod.spec?.containers ?? []) as Array<{ name: string }>).map((c) => c.name);
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
      ownerReferences: slimOwnerRefs(pod),
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
