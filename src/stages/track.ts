import { isTracked } from '../kinds/table.js';
import { setMaxListeners } from 'node:events';
import type { ProblemGroup } from '../kinds/problem-groups.js';
import type { ReadinessPolicy } from '../kinds/readiness.js';
import type { KubeClient } from '../kube/kube-client.js';
import type { KubeObject } from '../kube/objects.js';
import type { Reporter } from '../context.js';
import { diagnoseFailures } from './rollout-diagnosis.js';
import { RolloutIndex } from './rollout-index.js';
import { RolloutLoop } from './rollout-loop.js';
import { RolloutWatches } from './rollout-watches.js';

export interface Diagnosis {
  object: string;
  pod?: string;
  container?: string;
  reason: string;
  message?: string;
  exitCode?: number;
  restarts?: number;
  events: string[];
  logs: string[];
  /**
   * When more than one pod (or object) failed: every failing pod of the
   * release, grouped by cause, largest group first. On the first diagnosis only.
   */
  groups?: ProblemGroup[];
}

export interface TrackResult {
  ok: boolean;
  timedOut: boolean;
  failures: Diagnosis[];
  /** Objects not ready when tracking stopped, with their last state and, when the kubelet said, why their pods are not ready. */
  notReady: NotReady[];
  durationMs: number;
}

export interface NotReady {
  object: string;
  message: string;
  /** "2 pods: readiness probe failed 58 times: exec `test -f /www/missing.html` …" */
  cause?: string;
}

export interface TrackRequest {
  objects: KubeObject[];
  timeoutMs: number;
  policy: ReadinessPolicy;
  reporter: Reporter;
  signal: AbortSignal;
  now: () => Date;
}

/**
 * Follows applied objects with watches (no fixed-interval polling of the
 * API) until every one is ready, one has clearly failed, or the timeout
 * passes. A failure stops tracking (after a moment to collect the failures
 * of other pods) and is diagnosed: reason, exit code, the pod's last events
 * and the failing container's last log lines, and every failing pod of the
 * release grouped by cause.
 *
 * It scales to thousands of pods: the watches are scoped to the release
 * (label selectors), only what readiness reads is kept of each pod, an event
 * re-judges only the object it concerns, and progress is one line per
 * workload (one for the whole release when it has many).
 */
export async function trackRollout(kube: KubeClient, req: TrackRequest): Promise<TrackResult> {
  const started = Date.now();
  const tracked = req.objects.filter((o) => isTracked(o.kind));
  if (tracked.length === 0) return { ok: true, timedOut: false, failures: [], notReady: [], durationMs: 0 };
  const index = new RolloutIndex(tracked, kube.defaultNamespace);
  const loop = new RolloutLoop(index, req, kube.defaultNamespace);
  const stop = new AbortController();
  // One listener per watch and request in flight: many, and none of them a leak.
  const signal = AbortSignal.any([req.signal, stop.signal]);
  setMaxListeners(0, signal);
  const watches = new RolloutWatches(kube, req.reporter, signal, index, loop);
  await watches.start();
  // Time-based verdicts (e.g. unschedulable for 60 s) are re-evaluated from the in-memory state.
  const tick = setInterval(() => loop.rejudgeAll(), 1000);
  const timer = setTimeout(() => loop.end('timeout'), req.timeoutMs);
  const onAbort = () => loop.end('aborted');
  req.signal.addEventListener('abort', onAbort, { once: true });
  const outcome = await loop.finished;
  // A terminal's table of a large release ends (printed once more as plain lines) before the verdict's line.
  if (loop.many) req.reporter.rollout?.(loop.progress(outcome));
  // A large release's summary line ends with the verdict (a live terminal view drops the waiting one).
  if (loop.many && (outcome === 'done' || outcome === 'failed')) req.reporter.status('release', outcome === 'done' ? 'ready' : 'failed', loop.summary());
  clearInterval(tick);
  clearTimeout(timer);
  req.signal.removeEventListener('abort', onAbort);
  stop.abort();
  await Promise.allSettled(watches.running);
  if (outcome === 'aborted' && watches.errors.length && !req.signal.aborted) throw watches.errors[0];
  const failures = await diagnoseFailures(kube, index, loop, req);
  return { ok: outcome === 'done', timedOut: outcome === 'timeout', failures, notReady: loop.notReady(), durationMs: Date.now() - started };
}
