import { defaultPolicy, verdict, workloadCounts } from '../kinds/readiness.js';
import { podProblem } from '../kinds/pod.js';
import { objectUid, ownedBy, podReady } from '../kinds/object-fields.js';
import type { LiveObject } from '../kube/objects.js';
import { objectRef } from '../kube/object-key.js';
import type { Health, TreeNode } from './report-model.js';

/** What the tree is built from: the release's objects as live now (absent: not in the cluster), and the namespace's children. */
export interface TreeInput {
  /** The release's objects, as rendered (to keep their order and name the missing ones). */
  objects: ReadonlyArray<{ kind: string; metadata: { name: string; namespace?: string } }>;
  /** The live state of each, by `Kind/name`. */
  live: ReadonlyMap<string, LiveObject>;
  replicaSets: LiveObject[];
  pods: LiveObject[];
  endpoints: LiveObject[];
  /** PersistentVolumes bound to the release's claims, by name. */
  volumes?: ReadonlyMap<string, LiveObject>;
}

const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'ReplicaSet']);
/** The kinds shown as roots; a ConfigMap or Secret is shown only by its presence. */
const ORDER = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'Pod', 'Service', 'Ingress', 'PersistentVolumeClaim'];

/**
 * The release's objects as a tree with health (Argo CD's resource tree):
 * Deployment → ReplicaSet → Pods, StatefulSet/DaemonSet/Job → Pods,
 * Service → its endpoints, Ingress → the Services it routes to, PVC → its
 * volume; everything else as a leaf that is there or missing. Health comes
 * from the readiness rules deploy itself judges by. Pure.
 */
export function objectTree(input: TreeInput, now: Date): TreeNode[] {
  const rank = (kind: string) => (ORDER.includes(kind) ? ORDER.indexOf(kind) : ORDER.length);
  const objects = [...input.objects].sort((a, b) => rank(a.kind) - rank(b.kind));
  return objects.map((o) => {
    const ref = objectRef(o);
    const live = input.live.get(ref);
    if (!live) return { ref, health: 'missing', detail: 'not in the cluster', children: [] };
    if (WORKLOADS.has(o.kind)) return workloadNode(live, input, now);
    if (o.kind === 'Pod') return podNode(live, now);
    if (o.kind === 'Service') return serviceNode(live, input);
    if (o.kind === 'Ingress') return ingressNode(live, input);
    if (o.kind === 'PersistentVolumeClaim') return claimNode(live, input);
    return { ref, health: 'healthy', detail: 'present', children: [] };
  });
}

function workloadNode(obj: LiveObject, input: TreeInput, now: Date): TreeNode {
  const uid = objectUid(obj);
  const ownedPods = (owner: string | undefined) => input.pods.filter((p) => ownedBy(p, owner));
  // The readiness rules read the object's own pods and ReplicaSets, as the tracker hands them over.
  const replicaSets = input.replicaSets.filter((rs) => ownedBy(rs, uid));
  const pods = input.pods.filter((p) => ownedBy(p, uid) || replicaSets.some((rs) => ownedBy(p, objectUid(rs))));
  const v = verdict(obj, { pods, replicaSets }, defaultPolicy, now);
  const counts = workloadCounts(obj);
  let children: TreeNode[];
  if (obj.kind === 'Deployment') {
    // Old ReplicaSets scaled to zero with no pods left are history, not health.
    children = replicaSets
      .filter((rs) => num(at(rs, 'spec', 'replicas')) > 0 || ownedPods(objectUid(rs)).length > 0)
      .map((rs) => {
        const pods = ownedPods(objectUid(rs)).map((p) => podNode(p, now));
        const want = num(at(rs, 'spec', 'replicas'));
        const ready = num(at(rs, 'status', 'readyReplicas'));
        return {
          ref: objectRef(rs),
          health: childrenHealth(pods, ready >= want ? 'healthy' : 'progressing'),
          detail: `${ready}/${want} ready`,
          children: pods,
        };
      });
  } else {
    children = ownedPods(uid).map((p) => podNode(p, now));
  }
  const own: Health = v.state === 'ready' ? 'healthy' : v.state === 'failed' ? 'failed' : 'progressing';
  const shown = counts ? `${counts.ready}/${counts.want} ready, ${counts.updated}/${counts.want} updated` : v.message;
  return { ref: objectRef(obj), health: childrenHealth(children, own), detail: v.state === 'failed' && counts ? `${shown}; ${v.message}` : shown, children };
}

/** A parent that is not failed itself but has a failing child is degraded. */
function childrenHealth(children: TreeNode[], own: Health): Health {
  if (own !== 'healthy' && own !== 'progressing') return own;
  return children.some((c) => c.health === 'failed' || c.health === 'degraded') ? 'degraded' : own;
}

function podNode(pod: LiveObject, now: Date): TreeNode {
  const ref = objectRef(pod);
  const phase = text(at(pod, 'status', 'phase')) ?? 'Unknown';
  const problem = podProblem(pod, defaultPolicy, now);
  if (problem) {
    const what = [
      problem.reason,
      problem.container ? `in ${problem.container}` : '',
      problem.exitCode === undefined ? '' : `exit ${problem.exitCode}`,
      problem.restarts ? `${problem.restarts} restarts` : '',
    ]
      .filter(Boolean)
      .join(', ');
    return { ref, health: 'failed', detail: what, children: [] };
  }
  if (phase === 'Succeeded') return { ref, health: 'healthy', detail: 'completed', children: [] };
  if (phase === 'Failed') return { ref, health: 'failed', detail: text(at(pod, 'status', 'reason')) ?? 'Failed', children: [] };
  if (podReady(pod)) return { ref, health: 'healthy', detail: 'ready', children: [] };
  return { ref, health: 'progressing', detail: phase, children: [] };
}

function serviceNode(svc: LiveObject, input: TreeInput): TreeNode {
  const ref = objectRef(svc);
  if (at(svc, 'spec', 'type') === 'ExternalName')
    return { ref, health: 'healthy', detail: `external name ${text(at(svc, 'spec', 'externalName')) ?? ''}`, children: [] };
  if (!at(svc, 'spec', 'selector')) return { ref, health: 'healthy', detail: 'no selector (endpoints managed elsewhere)', children: [] };
  const ep = input.endpoints.find((e) => e.metadata.name === svc.metadata.name);
  if (!ep) return { ref, health: 'progressing', detail: 'no endpoints yet', children: [] };
  const subsets = (at(ep, 'subsets') ?? []) as Array<{ addresses?: unknown[]; notReadyAddresses?: unknown[] }>;
  const ready = subsets.reduce((n, s) => n + (s.addresses?.length ?? 0), 0);
  const notReady = subsets.reduce((n, s) => n + (s.notReadyAddresses?.length ?? 0), 0);
  const health: Health = ready > 0 ? (notReady > 0 ? 'progressing' : 'healthy') : notReady > 0 ? 'progressing' : 'degraded';
  const child: TreeNode = { ref: `Endpoints/${ep.metadata.name}`, health, detail: `${ready} ready, ${notReady} not ready addresses`, children: [] };
  return { ref, health, detail: ready > 0 ? `${ready} ready endpoints` : 'no ready endpoints', children: [child] };
}

function ingressNode(ing: LiveObject, input: TreeInput): TreeNode {
  const names = new Set<string>();
  const backend = (b: { service?: { name?: string } } | undefined) => b?.service?.name && names.add(b.service.name);
  backend(at(ing, 'spec', 'defaultBackend') as { service?: { name?: string } } | undefined);
  for (const rule of (at(ing, 'spec', 'rules') ?? []) as Array<{ http?: { paths?: Array<{ backend?: { service?: { name?: string } } }> } }>)
    for (const p of rule.http?.paths ?? []) backend(p.backend);
  const children: TreeNode[] = [...names].map((name) => {
    const svc = input.live.get(`Service/${name}`);
    return svc ? { ...serviceNode(svc, input), children: [] } : { ref: `Service/${name}`, health: 'missing', detail: 'not in the cluster', children: [] };
  });
  const bad = children.some((c) => c.health === 'missing' || c.health === 'degraded' || c.health === 'failed');
  return { ref: objectRef(ing), health: bad ? 'degraded' : 'healthy', detail: `routes to ${children.length} services`, children };
}

function claimNode(pvc: LiveObject, input: TreeInput): TreeNode {
  const phase = text(at(pvc, 'status', 'phase')) ?? 'Pending';
  const volumeName = text(at(pvc, 'spec', 'volumeName'));
  const volume = volumeName ? input.volumes?.get(volumeName) : undefined;
  const children: TreeNode[] = volumeName
    ? [
        {
          ref: `PersistentVolume/${volumeName}`,
          health: volume ? 'healthy' : 'unknown',
          detail: volume ? (text(at(volume, 'status', 'phase')) ?? '') : 'not read',
          children: [],
        },
      ]
    : [];
  const health: Health = phase === 'Bound' ? 'healthy' : phase === 'Lost' ? 'failed' : 'progressing';
  return { ref: objectRef(pvc), health, detail: phase, children };
}

/** A field of a live object by its path (undefined where the path ends). */
function at(obj: LiveObject, ...path: string[]): unknown {
  let v: unknown = obj;
  for (const k of path) v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}

const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
