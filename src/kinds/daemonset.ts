import { Phase, POD, SPEC_TEMPLATE, type KindRow } from './kind-row.js';
import { selectorLabels } from './object-fields.js';
import { firstPodProblem } from './pod.js';

export const daemonSetRow: KindRow = {
  kind: 'DaemonSet',
  phase: Phase.workload,
  podTemplate: SPEC_TEMPLATE,
  rollout: {
    watches: [POD],
    observesGeneration: true,
    judge(obj, related, policy, now) {
      const s = obj.status ?? {};
      const problem = firstPodProblem(related.pods, policy, now, related.firstSeen);
      if (problem) return { state: 'failed', message: `pod ${problem.pod}: ${problem.reason}`, problem };
      const want = s.desiredNumberScheduled ?? 0;
      const ready = (s.updatedNumberScheduled ?? 0) >= want && (s.numberAvailable ?? 0) >= want;
      return { state: ready ? 'ready' : 'progressing', message: `${s.numberAvailable ?? 0}/${want} available` };
    },
    currentPods(obj, uid, owned) {
      // Pods of the current template carry its generation; a crashing pod of the
      // template being replaced is not this rollout's failure.
      const generation = typeof obj.metadata.generation === 'number' ? String(obj.metadata.generation) : '';
      return owned.pods(uid).filter((p) => !generation || (p.metadata.labels?.['pod-template-generation'] ?? generation) === generation);
    },
    podLabels: selectorLabels,
    counts(obj) {
      const s = obj.status ?? {};
      return { want: s.desiredNumberScheduled ?? 0, ready: s.numberReady ?? 0, updated: s.updatedNumberScheduled ?? 0 };
    },
  },
};
