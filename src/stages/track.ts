import type { Reporter } from '../context.js';
import {
  childSelectors,
  currentPods,
  formatRolloutSummary,
  formatUnreadyCause,
  groupProblems,
  isDefaultClass,
  podProblem,
  slimPod,
  slimReplicaSet,
  unreadyCauses,
  verdict,
  workloadCounts,
  type ObjectPodProblem,
  type PodProblem,
  type ProblemGroup,
  type ReadinessPolicy,
  type RolloutVerdict,
  type UnreadyCause,
} from '../kinds/readiness.js';
import type { KubeClient, WatchEvent } from '../kube/client.js';
import { isStale, isTracked, kindInfo } from '../kinds/table.js';
import { objectRef as id } from '../kube/object-key.js';
import { RELEASE_LABEL, type KubeObject, type LiveObject as Obj } from '../kube/objects.js';

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

/** Progress lines of a workload still rolling out: at most one per this interval (state changes show at once). */
export const PROGRESS_INTERVAL_MS = 2_000;
/** The release-wide summary line of a large rollout: at most one per this interval. */
export const SUMMARY_INTERVAL_MS = 5_000;
/** Above this many tracked objects, one release-wide summary line replaces their progress lines. */
export const SUMMARY_ABOVE = 10;
/** After the first failure, how long other pods' failures are still collected, so the diagnosis groups them. */
export const FAILURE_GATHER_MS = 1_000;
/** A failed release tracking more pods than this gets the grouped causes even when one pod failed. */
const GROUP_ABOVE_PODS = 10;
/** Full diagnoses (events, log lines) at most; the other failed objects are in the groups. */
const MAX_DIAGNOSES = 3;

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
  const byNamespace = new Map<string, KubeObject[]>();
  for (const o of tracked) {
    const ns = o.metadata.namespace ?? kube.defaultNamespace;
    byNamespace.set(ns, [...(byNamespace.get(ns) ?? []), o]);
  }
  if (tracked.length === 0) return { ok: true, timedOut: false, failures: [], notReady: [], durationMs: 0 };
  const keyOf = (kind: string, ns: string | undefined, name: string) => `${kind}/${ns ?? ''}/${name}`;
  const trackedKey = (o: KubeObject) => keyOf(o.kind, o.metadata.namespace ?? kube.defaultNamespace, o.metadata.name);

  // Live state, filled by the watches. Tracked objects whole; pods and
  // ReplicaSets slimmed and indexed by their controller's UID.
  const live = new Map<string, Obj>();
  const uidToTracked = new Map<string, string>();
  const podsByOwner = new Map<string, Map<string, Obj>>();
  const replicaSetsByOwner = new Map<string, Map<string, Obj>>();
  const replicaSetOwner = new Map<string, string>();
  const events = new Map<string, Obj[]>();
  const dirty = new Set<string>();
  let allDirty = true;
  const controllerUid = (o: Obj) => {
    const refs = (o.metadata.ownerReferences ?? []) as Array<{ uid: string; controller?: boolean }>;
    return (refs.find((r) => r.controller) ?? refs[0])?.uid;
  };
  const markOwner = (ownerUid: string | undefined) => {
    if (!ownerUid) return;
    const direct = uidToTracked.get(ownerUid);
    if (direct) dirty.add(direct);
    const viaReplicaSet = replicaSetOwner.get(ownerUid);
    if (viaReplicaSet && uidToTracked.has(viaReplicaSet)) dirty.add(uidToTracked.get(viaReplicaSet)!);
  };
  const index = (into: Map<string, Map<string, Obj>>, ev: WatchEvent, obj: Obj) => {
    const owner = controllerUid(obj);
    if (!owner) return undefined;
    let m = into.get(owner);
    if (!m) into.set(owner, (m = new Map()));
    if (ev.type === 'DELETED') {
      m.delete(obj.metadata.name);
      if (m.size === 0) into.delete(owner);
    } else m.set(obj.metadata.name, obj);
    return owner;
  };
  const onTracked = (kind: string, ev: WatchEvent) => {
    const o = ev.object;
    const key = keyOf(kind, o.metadata.namespace, o.metadata.name);
    if (!trackedKeys.has(key)) return; // a watch by label may see objects of the release that are not tracked
    if (ev.type === 'DELETED') live.delete(key);
    else live.set(key, o);
    if (typeof o.metadata.uid === 'string') uidToTracked.set(o.metadata.uid, key);
    dirty.add(key);
  };
  const onPod = (ev: WatchEvent) => markOwner(index(podsByOwner, ev, slimPod(ev.object)));
  const onReplicaSet = (ev: WatchEvent) => {
    const rs = slimReplicaSet(ev.object);
    const owner = index(replicaSetsByOwner, ev, rs);
    if (owner && typeof rs.metadata.uid === 'string') {
      if (ev.type === 'DELETED') replicaSetOwner.delete(rs.metadata.uid);
      else replicaSetOwner.set(rs.metadata.uid, owner);
    }
    markOwner(owner);
  };
  const trackedKeys = new Set(tracked.map(trackedKey));

  const stop = new AbortController();
  const signal = AbortSignal.any([req.signal, stop.signal]);
  type Outcome = 'done' | 'failed' | 'timeout' | 'aborted';
  let settled = false;
  let settle: (r: Outcome) => void = () => {};
  const finished = new Promise<Outcome>((resolve) => (settle = resolve));
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

  /** The pods (and, for a Deployment, ReplicaSets) of a tracked object's current revision. */
  const podsOf = (cur: Obj): Obj[] => {
    if (isStale(cur)) return [];
    const uid = cur.metadata.uid as string | undefined;
    if (!uid) return [];
    if (cur.kind === 'Deployment') {
      const sets = [...(replicaSetsByOwner.get(uid)?.values() ?? [])];
      const pods = sets.flatMap((rs) => [...(podsByOwner.get(rs.metadata.uid as string)?.values() ?? [])]);
      return currentPods(cur, pods, sets);
    }
    return currentPods(cur, [...(podsByOwner.get(uid)?.values() ?? [])]);
  };

  /** A Deployment's pods that are not of its current revision (and not being deleted); undefined for other kinds. */
  const oldPodsOf = (cur: Obj, current: Obj[]): number | undefined => {
    if (cur.kind !== 'Deployment' || isStale(cur) || typeof cur.metadata.uid !== 'string') return undefined;
    // Only once the ReplicaSet of the Deployment's revision is known: until then "current" could be the old one's pods.
    const revision = cur.metadata.annotations?.['deployment.kubernetes.io/revision'];
    const sets = [...(replicaSetsByOwner.get(cur.metadata.uid)?.values() ?? [])];
    if (!revision || !sets.some((rs) => rs.metadata.annotations?.['deployment.kubernetes.io/revision'] === revision)) return undefined;
    const mine = new Set(current.map((p) => p.metadata.name));
    let old = 0;
    for (const rs of sets)
      for (const p of podsByOwner.get(rs.metadata.uid as string)?.values() ?? []) if (!mine.has(p.metadata.name) && !p.metadata.deletionTimestamp) old++;
    return old;
  };
  const many = tracked.length > SUMMARY_ABOVE;
  const lastShown = new Map<string, { text: string; state: string; at: number }>();
  let lastSummary = { text: '', at: 0 };
  let firstFailureAt: number | undefined;
  let pendingSyncs = 0;
  const evaluate = () => {
    if (pendingSyncs > 0 || settled) return; // judge only once every watch has listed its current state
    const now = req.now();
    const wallNow = Date.now();
    const judge = allDirty ? tracked.map(trackedKey) : [...dirty];
    allDirty = false;
    dirty.clear();
    const byKey = new Map(tracked.map((o) => [trackedKey(o), o]));
    for (const key of judge) {
      const o = byKey.get(key);
      if (!o) continue;
      const cur = live.get(key);
      let v: RolloutVerdict;
      if (!cur) v = { state: 'progressing', message: 'not created yet' };
      else {
        const ns = cur.metadata.namespace ?? kube.defaultNamespace;
        const pods = podsOf(cur);
        v = verdict(
          cur,
          {
            pods,
            oldPods: oldPodsOf(cur, pods),
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
      if (v.state === 'failed' && firstFailureAt === undefined) {
        firstFailureAt = wallNow;
        setTimeout(() => {
          allDirty = true;
          schedule();
        }, FAILURE_GATHER_MS).unref();
      }
      const why = causes.get(id(o)) ?? [];
      const detail = why.length ? `${v.message}; ${why.map((c) => formatUnreadyCause(c, false)).join('; ')}` : v.message;
      const state = v.state === 'progressing' ? 'waiting' : v.state;
      const shown = lastShown.get(id(o));
      if (shown?.text === detail && shown.state === state) continue;
      // A finished state shows at once; progress of one workload at most every few seconds, and not at all in a large release (the summary says it).
      const progressOnly = state === 'waiting' && shown?.state === 'waiting';
      if (progressOnly && (many || wallNow - shown.at < PROGRESS_INTERVAL_MS)) continue;
      if (state === 'waiting' && many && shown === undefined) {
        lastShown.set(id(o), { text: detail, state, at: wallNow });
        continue;
      }
      lastShown.set(id(o), { text: detail, state, at: wallNow });
      req.reporter.status(id(o), state, detail);
    }
    const states = tracked.map((o) => verdicts.get(id(o))?.state);
    if (many && wallNow - lastSummary.at >= SUMMARY_INTERVAL_MS) {
      const text = summary();
      if (text !== lastSummary.text) req.reporter.status('release', 'waiting', text);
      lastSummary = { text, at: wallNow };
    }
    if (firstFailureAt !== undefined && !states.includes('failed')) firstFailureAt = undefined; // it cleared meanwhile
    if (firstFailureAt !== undefined) {
      // Collect other pods' failures a moment longer, unless nothing else is still rolling out.
      if (wallNow - firstFailureAt >= FAILURE_GATHER_MS || !states.includes('progressing')) {
        settled = true;
        settle('failed');
      }
      return;
    }
    if (states.every((st) => st === 'ready')) {
      settled = true;
      settle('done');
    }
  };
  /** `37/50 objects ready; pods 1312/1500 ready, 1500/1500 updated` from the live statuses. */
  const summary = () => {
    const pods = { want: 0, ready: 0, updated: 0 };
    for (const o of tracked) {
      const c = (() => {
        const cur = live.get(trackedKey(o));
        return cur ? workloadCounts(cur) : undefined;
      })();
      if (!c) continue;
      pods.want += c.want;
      pods.ready += c.ready;
      pods.updated += c.updated;
    }
    const ready = tracked.filter((o) => verdicts.get(id(o))?.state === 'ready').length;
    return formatRolloutSummary({ ready, total: tracked.length }, pods);
  };
  let scheduled = false;
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    // setImmediate, not a microtask: a burst of watch events (a chunk of a thousand pods) is judged once.
    setImmediate(() => {
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
      allDirty = true;
      schedule();
    };
    req.reporter.debug(
      `watching ${kind} in ${ns}${query.labelSelector ? ` with ${query.labelSelector.length > 120 ? `${query.labelSelector.slice(0, 120)}…` : query.labelSelector}` : ''}${query.fieldSelector ? ` where ${query.fieldSelector}` : ''}`,
    );
    watches.push(
      kube
        .watch(apiVersion, kind, ns, query, {
          onEvent: (ev) => {
            if (ev.type === 'BOOKMARK') return;
            onEv(ev);
            schedule();
          },
          signal,
          onSynced: synced,
        })
        .catch((e) => {
          watchErrors.push(e);
          settled = true;
          settle('aborted');
        }),
    );
  };
  for (const [ns, objs] of byNamespace) {
    const kinds = new Map(objs.map((o) => [o.kind, o.apiVersion]));
    for (const [kind, apiVersion] of kinds) {
      const ofKind = objs.filter((o) => o.kind === kind);
      const releases = new Set(ofKind.map((o) => o.metadata.labels?.[RELEASE_LABEL]));
      const release = releases.size === 1 ? [...releases][0] : undefined;
      // One object: by name; several: by the release label skiff puts on all it applies.
      const query =
        ofKind.length === 1 ? { fieldSelector: `metadata.name=${ofKind[0]!.metadata.name}` } : release ? { labelSelector: `${RELEASE_LABEL}=${release}` } : {};
      startWatch(apiVersion, kind, ns, query, (ev) => onTracked(kind, ev));
    }
    // The child kinds the tracked kinds are judged by (pods, ReplicaSets), scoped to the workloads' selectors.
    const children = new Map([...kinds.keys()].flatMap((kind) => kindInfo(kind).watches).map((w) => [w.kind, w.apiVersion]));
    const workloads = objs.filter((o) => kindInfo(o.kind).watches.length > 0) as Obj[];
    const selectors = childSelectors(workloads) ?? [undefined];
    for (const [kind, apiVersion] of children) {
      for (const labelSelector of selectors) {
        startWatch(apiVersion, kind, ns, labelSelector ? { labelSelector } : {}, kind === 'Pod' ? onPod : kind === 'ReplicaSet' ? onReplicaSet : () => {});
      }
    }
    const pvcs = objs.filter((o) => o.kind === 'PersistentVolumeClaim');
    // Only Warning events explain a failure or an unready pod; a claim's ExternalProvisioning is Normal.
    startWatch('v1', 'Event', ns, pvcs.length ? {} : { fieldSelector: 'type=Warning' }, (ev) => {
      const involved = ev.object.involvedObject?.name as string | undefined;
      if (!involved || ev.type === 'DELETED') return;
      events.set(involved, [...(events.get(involved) ?? []).slice(-19), slimEvent(ev.object)]);
      allDirty = true;
    });
    if (pvcs.length && !storageClasses) storageClasses = await listStorageClasses(kube);
    for (const pvc of pvcs) {
      if (bindsOnFirstUse(storageClasses, pvc)) bindLater.add(`${ns}/${pvc.metadata.name}`);
    }
  }
  // Time-based verdicts (e.g. unschedulable for 60 s) are re-evaluated from the in-memory state.
  const tick = setInterval(() => {
    allDirty = true;
    schedule();
  }, 1000);
  const timer = setTimeout(() => settle('timeout'), req.timeoutMs);
  const onAbort = () => settle('aborted');
  req.signal.addEventListener('abort', onAbort, { once: true });
  const outcome = await finished;
  settled = true;
  // A large release's summary line ends with the verdict (a live terminal view drops the waiting one).
  if (many && (outcome === 'done' || outcome === 'failed')) req.reporter.status('release', outcome === 'done' ? 'ready' : 'failed', summary());
  clearInterval(tick);
  clearTimeout(timer);
  req.signal.removeEventListener('abort', onAbort);
  stop.abort();
  await Promise.allSettled(watches);
  if (outcome === 'aborted' && watchErrors.length && !req.signal.aborted) throw watchErrors[0];

  const failures: Diagnosis[] = [];
  const failed = tracked.filter((o) => verdicts.get(id(o))?.state === 'failed');
  for (const o of failed.slice(0, MAX_DIAGNOSES)) {
    const v = verdicts.get(id(o))!;
    failures.push(await diagnose(kube, o, v.problem, v.message, events));
  }
  if (failures.length) {
    // Every failing pod of the release, grouped by cause: hundreds of pods read as a few lines.
    const problems: ObjectPodProblem[] = [];
    const now = req.now();
    let podCount = 0;
    for (const o of tracked) {
      const cur = live.get(trackedKey(o));
      if (!cur) continue;
      for (const pod of podsOf(cur)) {
        podCount++;
        const p = podProblem(pod, req.policy, now, firstSeen);
        if (p) problems.push({ ...p, object: id(o) });
      }
      const v = verdicts.get(id(o));
      // An object failed by its own condition (no pod to blame): a group of its own.
      if (v?.state === 'failed' && v.problem && !v.problem.pod && !problems.some((p) => p.object === id(o))) problems.push({ ...v.problem, object: id(o) });
    }
    // In a small release the diagnosis above says it all; past a few pods, say how many fail and how.
    if (problems.length > 1 || failed.length > 1 || podCount > GROUP_ABOVE_PODS) failures[0]!.groups = groupProblems(problems);
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

/** What the tracker keeps of an event: who it is about, why, and when. */
function slimEvent(e: Obj): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: e.metadata.name, namespace: e.metadata.namespace, creationTimestamp: e.metadata.creationTimestamp },
    involvedObject: e.involvedObject,
    type: e.type,
    reason: e.reason,
    message: e.message,
    count: e.count,
    series: e.series,
    lastTimestamp: e.lastTimestamp,
    eventTime: e.eventTime,
  };
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
