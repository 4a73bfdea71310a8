import type { LiveObject as Obj } from '../kube/objects.js';
import { Phase, POD, REPLICA_SET, SPEC_TEMPLATE, type KindRow, type OwnedChildren } from './kind-row.js';
import { condition, deploymentRevision, objectUid, podReady, replicaCounts, selectorLabels, slimOwnerRefs, specReplicas } from './object-fields.js';
import type { ReadinessInput, ReadinessPolicy, RolloutVerdict } from './readiness.js';
import { firstPodProblem } from './pod.js';

function judgeDeployment(obj: Obj, related: ReadinessInput, policy: ReadinessPolicy, now: Date): RolloutVerdict {
  const want = specReplicas(obj);
  const s = obj.status ?? {};
  const firstProblem = () => firstPodProblem(related.pods, policy, now, related.firstSeen);
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
  const ready = updated >= want && available >= want && total <= want && (s.unavailableReplicas ?? 0) === 0;
  if (!ready && related.oldPods === 0 && !(obj.spec?.minReadySeconds > 0)) {
    // Judged from the pods themselves: all of the current revision, Ready (minReadySeconds 0: Ready is available), no other left.
    const current = related.pods.filter((p) => !p.metadata.deletionTimestamp);
    if (current.length === want && current.every(podReady)) return { state: 'ready', message: `${want}/${want} updated, ${want}/${want} available` };
  }
  return { state: ready ? 'ready' : 'progressing', message };
}

/** The ReplicaSet of the Deployment's revision, else its newest. */
function newestReplicaSet(obj: Obj, sets: Obj[]): Obj | undefined {
  const revision = deploymentRevision(obj);
  return (
    sets.find((rs) => deploymentRevision(rs) === revision) ?? sets.sort((a, b) => Number(deploymentRevision(b) ?? 0) - Number(deploymentRevision(a) ?? 0))[0]
  );
}

/** A Deployment's pods that are not of its current revision (and not being deleted). */
function oldPods(obj: Obj, uid: string, current: Obj[], owned: OwnedChildren): number | undefined {
  // Only once the ReplicaSet of the Deployment's revision is known: until then "current" could be the old one's pods.
  const revision = deploymentRevision(obj);
  const sets = owned.replicaSets(uid);
  if (!revision || !sets.some((rs) => deploymentRevision(rs) === revision)) return undefined;
  const mine = new Set(current.map((p) => p.metadata.name));
  let old = 0;
  for (const rs of sets) for (const p of owned.pods(objectUid(rs) ?? '')) if (!mine.has(p.metadata.name) && !p.metadata.deletionTimestamp) old++;
  return old;
}

export const deploymentRow: KindRow = {
  kind: 'Deployment',
  phase: Phase.workload,
  podTemplate: SPEC_TEMPLATE,
  rollout: {
    watches: [POD, REPLICA_SET],
    observesGeneration: true,
    judge: judgeDeployment,
    // The newest ReplicaSet's pods.
    currentPods(obj, uid, owned) {
      const newest = newestReplicaSet(obj, owned.replicaSets(uid));
      return newest ? owned.pods(objectUid(newest) ?? '') : [];
    },
    oldPods,
    podLabels: selectorLabels,
    counts: replicaCounts,
  },
};

/** Applied on its own, a ReplicaSet is ready once applied; the tracker watches those of Deployments. */
export const replicaSetRow: KindRow = { kind: 'ReplicaSet', phase: Phase.workload, podTemplate: SPEC_TEMPLATE };

/** What the tracker keeps of a ReplicaSet: its owner and revision, to find a Deployment's current pods. Pure. */
export function slimReplicaSet(rs: Obj): Obj {
  const m = rs.metadata;
  const revision = deploymentRevision(rs);
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      annotations: revision === undefined ? {} : { 'deployment.kubernetes.io/revision': revision },
      ownerReferences: slimOwnerRefs(rs),
    },
  };
}
