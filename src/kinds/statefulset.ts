import type { LiveObject as Obj } from '../kube/objects.js';
import { Phase, POD, SPEC_TEMPLATE, type KindRow } from './kind-row.js';
import { replicaCounts, selectorLabels, specReplicas } from './object-fields.js';
import type { ReadinessInput, ReadinessPolicy, RolloutVerdict } from './readiness.js';
import { firstPodProblem } from './pod.js';

function judgeStatefulSet(obj: Obj, related: ReadinessInput, policy: ReadinessPolicy, now: Date): RolloutVerdict {
  const want = specReplicas(obj);
  const s = obj.status ?? {};
  const problem = firstPodProblem(related.pods, policy, now, related.firstSeen);
  if (problem) return { state: 'failed', message: `pod ${problem.pod}: ${problem.reason}`, problem };
  const rolling = (obj.spec?.updateStrategy?.type ?? 'RollingUpdate') === 'RollingUpdate';
  const revisionDone = !rolling || !s.updateRevision || s.currentRevision === s.updateRevision || (s.updatedReplicas ?? 0) >= want;
  const ready = (s.readyReplicas ?? 0) >= want && (s.availableReplicas ?? s.readyReplicas ?? 0) >= want && revisionDone && (s.updatedReplicas ?? want) >= want;
  return { state: ready ? 'ready' : 'progressing', message: `${s.readyReplicas ?? 0}/${want} ready, ${s.updatedReplicas ?? 0}/${want} updated` };
}

export const statefulSetRow: KindRow = {
  kind: 'StatefulSet',
  phase: Phase.workload,
  podTemplate: SPEC_TEMPLATE,
  rollout: {
    watches: [POD],
    observesGeneration: true,
    judge: judgeStatefulSet,
    // The update revision's pods.
    currentPods(obj, uid, owned) {
      const rev = obj.status?.updateRevision as string | undefined;
      return owned.pods(uid).filter((p) => !rev || p.metadata.labels?.['controller-revision-hash'] === rev);
    },
    podLabels: selectorLabels,
    counts: replicaCounts,
  },
};
