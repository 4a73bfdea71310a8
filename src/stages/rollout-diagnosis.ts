import { failureEventLines } from '../kinds/event.js';
import { podProblem } from '../kinds/pod.js';
import { groupProblems, type ObjectPodProblem } from '../kinds/problem-groups.js';
import type { PodProblem } from '../kinds/readiness.js';
import type { KubeClient } from '../kube/kube-client.js';
import { objectRef as id } from '../kube/object-key.js';
import type { KubeObject } from '../kube/objects.js';
import type { RolloutIndex } from './rollout-index.js';
import type { RolloutLoop } from './rollout-loop.js';
import type { Diagnosis, TrackRequest } from './track.js';

/** A failed release tracking more pods than this gets the grouped causes even when one pod failed. */
const GROUP_ABOVE_PODS = 10;
/** Full diagnoses (events, log lines) at most; the other failed objects are in the groups. */
const MAX_DIAGNOSES = 3;

/** The failed objects' diagnoses (the first few in full) and, on the first, every failing pod of the release grouped by cause. */
export async function diagnoseFailures(
  kube: KubeClient,
  index: RolloutIndex,
  loop: RolloutLoop,
  req: Pick<TrackRequest, 'policy' | 'now'>,
): Promise<Diagnosis[]> {
  const failures: Diagnosis[] = [];
  const failed = index.tracked.filter((o) => loop.verdicts.get(id(o))?.state === 'failed');
  for (const o of failed.slice(0, MAX_DIAGNOSES)) {
    const v = loop.verdicts.get(id(o))!;
    failures.push(await diagnose(kube, index, o, v.problem, v.message));
  }
  if (failures.length) {
    // Every failing pod of the release, grouped by cause: hundreds of pods read as a few lines.
    const problems: ObjectPodProblem[] = [];
    const now = req.now();
    let podCount = 0;
    for (const o of index.tracked) {
      const cur = index.liveOf(o);
      if (!cur) continue;
      for (const pod of index.podsOf(cur)) {
        podCount++;
        const p = podProblem(pod, req.policy, now, loop.firstSeen);
        if (p) problems.push({ ...p, object: id(o) });
      }
      const v = loop.verdicts.get(id(o));
      // An object failed by its own condition (no pod to blame): a group of its own.
      if (v?.state === 'failed' && v.problem && !v.problem.pod && !problems.some((p) => p.object === id(o))) problems.push({ ...v.problem, object: id(o) });
    }
    // In a small release the diagnosis above says it all; past a few pods, say how many fail and how.
    if (problems.length > 1 || failed.length > 1 || podCount > GROUP_ABOVE_PODS) failures[0]!.groups = groupProblems(problems);
  }
  return failures;
}

/** One failed object: why, its pod's last events and the failing container's last log lines. */
async function diagnose(kube: KubeClient, index: RolloutIndex, obj: KubeObject, problem: PodProblem | undefined, message: string): Promise<Diagnosis> {
  const ns = obj.metadata.namespace ?? kube.defaultNamespace;
  const pod = problem?.pod || undefined;
  const eventLines = failureEventLines([...index.eventsAbout(obj.metadata.name), ...(pod ? index.eventsAbout(pod) : [])]);
  let logs: string[] = [];
  if (pod && problem?.container && !/ImagePull|ErrImage|InvalidImageName|CreateContainer/.test(problem.reason)) {
    const previous = (problem.restarts ?? 0) > 0;
    let text = await kube.logs(ns, pod, problem.container, { tailLines: 10, previous });
    if (!text && previous) text = await kube.logs(ns, pod, problem.container, { tailLines: 10 });
    logs = text.split('\n').filter((l) => l.length > 0);
  }
  return {
    object: id(obj),
    pod,
    container: problem?.container,
    reason: problem?.reason ?? 'Failed',
    message: problem?.message ?? message,
    exitCode: problem?.exitCode,
    restarts: problem?.restarts,
    events: eventLines,
    logs,
  };
}
