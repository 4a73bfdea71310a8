import { Phase, POD, SPEC_TEMPLATE, type KindRow } from './kind-row.js';
import { condition } from './object-fields.js';
import { firstFailedPod, firstPodProblem } from './pod.js';

export const jobRow: KindRow = {
  kind: 'Job',
  phase: Phase.workload,
  podTemplate: SPEC_TEMPLATE,
  rollout: {
    watches: [POD],
    judge(obj, related, policy, now) {
      const failed = condition(obj, 'Failed');
      if (failed?.status === 'True')
        return {
          state: 'failed',
          message: `job failed: ${failed.reason ?? ''} ${failed.message ?? ''}`.trim(),
          problem: firstFailedPod(related.pods) ?? { pod: '', reason: failed.reason ?? 'JobFailed', message: failed.message },
        };
      if (condition(obj, 'Complete')?.status === 'True') return { state: 'ready', message: `completed (${obj.status?.succeeded ?? 1} succeeded)` };
      // A Job retries a crashing pod itself (backoffLimit); only its Failed condition ends it.
      const problem = firstPodProblem(related.pods, policy, now, related.firstSeen);
      if (problem && problem.reason !== 'CrashLoopBackOff') return { state: 'failed', message: `pod ${problem.pod}: ${problem.reason}`, problem };
      const active = obj.status?.active ?? 0;
      const failedPods = obj.status?.failed ?? 0;
      return { state: 'progressing', message: active === 0 && failedPods === 0 ? 'no pod started yet' : `${active} running, ${failedPods} failed` };
    },
    currentPods: (_obj, uid, owned) => owned.pods(uid),
    // Every Kubernetes version labels a Job's pods with job-name.
    podLabels: (obj) => ({ 'job-name': obj.metadata.name }),
  },
};

/** Not followed: a CronJob's runs start on its schedule, not when it is applied. */
export const cronJobRow: KindRow = { kind: 'CronJob', phase: Phase.dependent, podTemplate: ['spec', 'jobTemplate', 'spec', 'template'] };
