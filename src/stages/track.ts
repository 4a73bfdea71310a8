import type { Reporter } from '../context.js';
import {
  currentPods,
  formatUnreadyCause,
  isDefaultClass,
  unreadyCauses,
  verdict,
  type PodProblem,
  type ReadinessPolicy,
  type RolloutVerdict,
  type UnreadyCause,
} from '../core/readiness.js';
import type { KubeClient, WatchEvent } from '../kube/client.js';
import { isStale, isTracked, kindInfo } from '../kube/kinds.js';
import { objectRef as id } from '../kube/object-key.js';
import type { KubeObject, LiveObject as Obj } from '../kube/types.js';

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
 * passes. A failure stops tracking at once and is diagnosed: reason, exit
 * code, the pod's last events and the failing container's last log lines.
 */
export async function trackRollout(kube: KubeClient, req: TrackRequest): Promise<TrackResult> {
  const started = Date.now();
  const tracked = req.objects.filter((o) => isTracked(o.kind));
  const byNamespace = new Map<string, KubeObject[]>();
  for (const o of tracked) {
    const ns = o.metadata.namespace ?? kube.defaultNamespace;
    byNamespace.set(ns, [...(byNamespace.get(ns) ?? []), o]);
  }
  if (tracked.length === 0) return { ok: true, timedOut: false, failures: [], notReady: [], durationMs: 0 };

  // Live state, filled by the watches: kind → namespace/name → object.
  const live = new Map<string, Map<string, Obj>>();
  const events = new Map<string, Obj[]>();
  const store = (kind: string, ev: WatchEvent) => {
    let m = live.get(kind);
    if (!m) live.set(kind, (m = new Map()));
    const key = `${ev.object.metadata.namespace}/${ev.object.metadata.name}`;
    if (ev.type === 'DELETED') m.delete(key);
    else m.set(key, ev.object);
  };

  const stop = new AbortController();
  const signal = AbortSignal.any([req.signal, stop.signal]);
  const lastShown = new Map<string, string>();
  let settle: (r: 'done' | 'failed' | 'timeout' | 'aborted') => void = () => {};
  const finished = new Promise<'done' | 'failed' | 'timeout' | 'aborted'>((resolve) => (settle = resolve));
  const verdicts = new Map<string, RolloutVerdict>();
  const causes = new Map<string, UnreadyCause[]>();
  // PVCs whose StorageClass binds on first use are ready once applied.
  const bindLater = new Set<string>();
  // The cluster's StorageClasses, read once when PVCs are tracked, to explain a Pending claim.
  let storageClasses: Obj[] | undefined;

  // When each retried container state (CreateContainerConfigError…) was first seen.
  const problemSeen = new Map<string, number>();
  const firstSeen = (key: string) => {
    if (!problemSeen.has(key)) problemSeen.set(key, req.now().getTime());
    return problemSeen.get(key);
  };

  let pendingSyncs = 0;
  const evaluate = () => {
    if (pendingSyncs > 0) return; // judge only once every watch has listed its current state
    const now = req.now();
    let allReady = true;
    for (const o of tracked) {
      const ns = o.metadata.namespace ?? kube.defaultNamespace;
      const cur = live.get(o.kind)?.get(`${ns}/${o.metadata.name}`);
      let v: RolloutVerdict;
      if (!cur) v = { state: 'progressing', message: 'not created yet' };
      else {
        const pods = isStale(cur)
          ? []
          : currentPods(
              cur,
              [...(live.get('Pod')?.values() ?? [])].filter((p) => p.metadata.namespace === ns),
              [...(live.get('ReplicaSet')?.values() ?? [])],
            );
        v = verdict(
          cur,
          {
            pods,
            bindImmediately: !bindLater.has(`${ns}/${o.metadata.name}`),
            firstSeen,
            storageClasses,
            events: o.kind === 'PersistentVolumeClaim' ? (events.get(o.metadata.name) ?? []) : undefined,
          },
          req.policy,
          now,
        );
        // Running but not Ready: say why as soon as the kubelet does (without counts, which change every probe period).
        const unready =
          v.state === 'progressing'
            ? unreadyCauses(
                pods,
                pods.flatMap((p) => events.get(p.metadata.name) ?? []),
              )
            : [];
        causes.set(id(o), unready);
      }
      verdicts.set(id(o), v);
      const why = causes.get(id(o)) ?? [];
      const detail = why.length ? `${v.message}; ${why.map((c) => formatUnreadyCause(c, false)).join('; ')}` : v.message;
      const shown = `${v.state} ${detail}`;
      if (lastShown.get(id(o)) !== shown) {
        lastShown.set(id(o), shown);
        req.reporter.status(id(o), v.state === 'progressing' ? 'waiting' : v.state, detail);
      }
      if (v.state === 'failed') return settle('failed');
      if (v.state !== 'ready') allReady = false;
    }
    if (allReady) settle('done');
  };
  let scheduled = false;
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(() => {
      scheduled = false;
      evaluate();
    });
  };

  const watches: Array<Promise<void>> = [];
  const watchErrors: unknown[] = [];
  const startWatch = (
    apiVersion: string,
    kind: string,
    ns: string,
    query: { labelSelector?: string; fieldSelector?: string },
    onEv: (ev: WatchEvent) => void,
  ) => {
    pendingSyncs++;
    const synced = () => {
      pendingSyncs--;
      schedule();
    };
    watches.push(
      kube
        .watch(apiVersion, kind, ns, query, {
          onEvent: (ev) => {
            onEv(ev);
            schedule();
          },
          signal,
          onSynced: synced,
        })
        .catch((e) => {
          watchErrors.push(e);
          settle('aborted');
        }),
    );
  };
  for (const [ns, objs] of byNamespace) {
    const kinds = new Map(objs.map((o) => [o.kind, o.apiVersion]));
    for (const [kind, apiVersion] of kinds) {
      const names = objs.filter((o) => o.kind === kind).map((o) => o.metadata.name);
      const query = names.length === 1 ? { fieldSelector: `metadata.name=${names[0]}` } : {};
      startWatch(apiVersion, kind, ns, query, (ev) => store(kind, ev));
    }
    // The child kinds the tracked kinds are judged by (pods, ReplicaSets), one watch each.
    const children = new Map([...kinds.keys()].flatMap((kind) => kindInfo(kind).watches).map((w) => [w.kind, w.apiVersion]));
    for (const [kind, apiVersion] of children) startWatch(apiVersion, kind, ns, {}, (ev) => store(kind, ev));
    startWatch('v1', 'Event', ns, {}, (ev) => {
      const involved = ev.object.involvedObject?.name as string | undefined;
      if (!involved || ev.type === 'DELETED') return;
      events.set(involved, [...(events.get(involved) ?? []).slice(-19), ev.object]);
    });
    const pvcs = objs.filter((o) => o.kind === 'PersistentVolumeClaim');
    if (pvcs.length && !storageClasses) storageClasses = await listStorageClasses(kube);
    for (const pvc of pvcs) {
      if (bindsOnFirstUse(storageClasses, pvc)) bindLater.add(`${ns}/${pvc.metadata.name}`);
    }
  }
  // Time-based verdicts (e.g. unschedulable for 10 s) are re-evaluated from the in-memory state.
  const tick = setInterval(schedule, 1000);
  const timer = setTimeout(() => settle('timeout'), req.timeoutMs);
  const onAbort = () => settle('aborted');
  req.signal.addEventListener('abort', onAbort, { once: true });
  const outcome = await finished;
  clearInterval(tick);
  clearTimeout(timer);
  req.signal.removeEventListener('abort', onAbort);
  stop.abort();
  await Promise.allSettled(watches);
  if (outcome === 'aborted' && watchErrors.length && !req.signal.aborted) throw watchErrors[0];

  const failures: Diagnosis[] = [];
  for (const o of tracked) {
    const v = verdicts.get(id(o));
    if (v?.state === 'failed') failures.push(await diagnose(kube, o, v.problem, v.message, events));
  }
  const notReady = tracked
    .filter((o) => verdicts.get(id(o))?.state !== 'ready')
    .map((o): NotReady => {
      const why = causes.get(id(o)) ?? [];
      const message = verdicts.get(id(o))?.message ?? 'unknown';
      return why.length ? { object: id(o), message, cause: why.map((c) => formatUnreadyCause(c)).join('; ') } : { object: id(o), message };
    });
  return { ok: outcome === 'done', timedOut: outcome === 'timeout', failures, notReady, durationMs: Date.now() - started };
}

async function listStorageClasses(kube: KubeClient): Promise<Obj[] | undefined> {
  try {
    return (await kube.list('storage.k8s.io/v1', 'StorageClass', undefined)).items;
  } catch {
    return undefined; // not allowed to read them: Pending claims are explained by events only
  }
}

function bindsOnFirstUse(classes: Obj[] | undefined, pvc: KubeObject): boolean {
  const className = (pvc as Obj).spec?.storageClassName as string | undefined;
  const sc = className ? classes?.find((c) => c.metadata.name === className) : classes?.find(isDefaultClass);
  return sc?.volumeBindingMode === 'WaitForFirstConsumer';
}

async function diagnose(kube: KubeClient, obj: KubeObject, problem: PodProblem | undefined, message: string, events: Map<string, Obj[]>): Promise<Diagnosis> {
  const ns = obj.metadata.namespace ?? kube.defaultNamespace;
  const pod = problem?.pod || undefined;
  const eventLines = [...(events.get(obj.metadata.name) ?? []), ...(pod ? (events.get(pod) ?? []) : [])]
    .filter((e) => e.type === 'Warning' || e.reason === 'Failed' || e.reason === 'BackOff')
    .sort((a, b) => String(a.lastTimestamp ?? a.eventTime ?? '').localeCompare(String(b.lastTimestamp ?? b.eventTime ?? '')))
    .slice(-5)
    .map(
      (e) =>
        `${e.type} ${e.reason} (${e.involvedObject?.kind}/${e.involvedObject?.name}${(e.count ?? 1) > 1 ? `, ×${e.count}` : ''}): ${String(e.message ?? '').trim()}`,
    );
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
